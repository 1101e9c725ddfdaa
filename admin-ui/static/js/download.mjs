// Opening a delivery on this device: level 3/4 files are fetched as OpenPGP messages, decrypted
// here into a temporary file, and offered for saving only after the integrity check passed.
import { api, localError, msg, openpgp, save, streamToTempFile, unlockMyKey } from './common.mjs';

const box = document.getElementById('open-files');
const deliveryId = box?.dataset.delivery;
const level = Number(box?.dataset.level ?? 0);
const secupassInput = document.getElementById('open-secupass');
let unlocked;

async function key(status) {
  if (unlocked) return unlocked;
  const secupass = secupassInput?.value ?? '';
  if (!secupass) throw localError('SEALDROP_E_SECUPASS_REQUIRED', msg(box, 'need'));
  status.textContent = msg(box, 'unlocking');
  try {
    unlocked = await unlockMyKey(secupass);
  } catch (err) {
    if (err.code === 'SEALDROP_E_WRONG_SECUPASS') throw localError(err.code, msg(box, 'wrong'));
    throw err;
  }
  secupassInput.value = '';
  return unlocked;
}

/** Decrypts a streamed OpenPGP message into a temporary file; rejects if the MDC check fails. */
async function decryptToFile(body, privateKey) {
  const pgp = await openpgp();
  const message = await pgp.readMessage({ binaryMessage: body });
  // Streams the plaintext (no whole file in memory); an altered file errors at the end.
  const { data } = await pgp.decrypt({ message, decryptionKeys: privateKey, format: 'binary', config: { allowUnauthenticatedStream: true } });
  return streamToTempFile(data);
}

async function download(button) {
  const status = button.parentElement.querySelector('.status');
  button.disabled = true;
  status.className = 'status';
  try {
    const privateKey = level >= 3 ? await key(status) : null;
    status.textContent = msg(box, 'downloading');
    const res = await api('GET', `/deliveries/${deliveryId}/files/${button.dataset.file}`);
    let result;
    try {
      result = privateKey ? await decryptToFile(res.body, privateKey) : await streamToTempFile(res.body);
    } catch {
      throw localError('SEALDROP_E_INTEGRITY', msg(box, 'tampered'));
    }
    status.textContent = msg(box, 'verifying');
    save(result.file, button.dataset.name);
    status.textContent = msg(box, 'done');
    setTimeout(() => result.remove(), 60_000);
  } catch (err) {
    status.textContent = err.message;
    status.className = 'status error';
  } finally {
    button.disabled = false;
  }
}

for (const b of document.querySelectorAll('button.download')) b.addEventListener('click', () => download(b));

document.getElementById('decrypt-message')?.addEventListener('click', async (ev) => {
  const button = ev.currentTarget;
  const status = document.getElementById('message-status');
  const out = document.getElementById('message-text');
  button.disabled = true;
  try {
    const privateKey = await key(status);
    const res = await api('GET', `/deliveries/${deliveryId}/message`);
    const pgp = await openpgp();
    const message = await pgp.readMessage({ binaryMessage: new Uint8Array(await res.arrayBuffer()) });
    const { data } = await pgp.decrypt({ message, decryptionKeys: privateKey, format: 'utf8' });
    out.textContent = data;
    out.hidden = false;
    status.textContent = '';
  } catch (err) {
    status.textContent = err.message;
    status.className = 'status error';
  } finally {
    button.disabled = false;
  }
});
