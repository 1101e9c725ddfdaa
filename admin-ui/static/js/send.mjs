// Sending from the browser: levels 3/4 encrypt each file (and the level-4 message) on this
// device to the owner's key and the recipients' active keys; the server stores what it cannot
// read. Levels 1/2 upload the file and the server encrypts it at rest.
import { api, msg, openpgp, streamToTempFile } from './common.mjs';

const form = document.getElementById('send-form');
const status = document.getElementById('send-status');
const errorBox = document.getElementById('send-error');
const button = document.getElementById('send-button');

async function encryptToFile(pgp, data, keys, filename) {
  const message = await pgp.createMessage(typeof data === 'string' ? { text: data, filename } : { binary: data, filename, format: 'binary' });
  const encrypted = await pgp.encrypt({ message, encryptionKeys: keys, format: 'binary' });
  return streamToTempFile(encrypted instanceof ReadableStream ? encrypted : new Blob([encrypted]).stream());
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  errorBox.hidden = true;
  const to = form.elements.to.value.split(/[\s,;]+/).filter(Boolean);
  const level = Number(form.elements.level.value);
  const message = form.elements.message.value;
  const files = [...form.elements.files.files];
  if (files.length === 0 && !message) {
    errorBox.textContent = msg(form, 'nofiles');
    errorBox.hidden = false;
    return;
  }
  button.disabled = true;
  try {
    status.textContent = msg(form, 'creating');
    const created = await (
      await api('POST', '/deliveries', {
        to,
        subject: form.elements.subject.value,
        level,
        expiresInDays: Number(form.elements.expires.value),
        ...(message && level < 4 ? { message } : {}),
      })
    ).json();
    const id = created.delivery.id;
    const pgp = level >= 3 ? await openpgp() : null;
    const keys = pgp ? await Promise.all(created.keys.map((k) => pgp.readKey({ armoredKey: k.publicKey }))) : [];
    for (const file of files) {
      const name = encodeURIComponent(file.name);
      if (pgp) {
        status.textContent = msg(form, 'encrypting', { name: file.name });
        const enc = await encryptToFile(pgp, file.stream(), keys, file.name);
        status.textContent = msg(form, 'uploading', { name: file.name });
        try {
          await api('PUT', `/deliveries/${id}/files/${name}`, enc.file, { 'Content-Type': 'application/pgp-encrypted', 'X-Plaintext-Size': String(file.size) });
        } finally {
          await enc.remove();
        }
      } else {
        status.textContent = msg(form, 'uploading', { name: file.name });
        await api('PUT', `/deliveries/${id}/files/${name}`, file, { 'Content-Type': 'application/octet-stream' });
      }
    }
    if (pgp && level === 4 && message) {
      const enc = await encryptToFile(pgp, message, keys, 'message.txt');
      try {
        await api('PUT', `/deliveries/${id}/message`, enc.file, { 'Content-Type': 'application/pgp-encrypted' });
      } finally {
        await enc.remove();
      }
    }
    status.textContent = msg(form, 'sending');
    await api('POST', `/deliveries/${id}/send`);
    location.assign(`/deliveries/${id}`);
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
    status.textContent = '';
    button.disabled = false;
  }
});

// The form is handled here from now on (the page renders the button disabled: see send.njk).
button.disabled = false;
