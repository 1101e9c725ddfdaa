// Release on this device: the owner's key unwraps each file's session key and wraps it to the
// recipient's key; only the new wraps go to the server. No blob is touched.
import { api, msg, openpgp, unlockMyKey } from './common.mjs';

const box = document.getElementById('release');
const button = document.getElementById('release-button');
const status = document.getElementById('release-status');
const input = document.getElementById('release-secupass');
const confirmBox = document.getElementById('release-confirm');

button?.addEventListener('click', async () => {
  if (confirmBox && !confirmBox.checked) {
    status.textContent = msg(box, 'confirm');
    confirmBox.focus();
    return;
  }
  button.disabled = true;
  status.className = '';
  status.textContent = msg(box, 'working');
  try {
    let ownerKey;
    try {
      ownerKey = await unlockMyKey(input.value);
    } catch (err) {
      throw err.code === 'SEALDROP_E_WRONG_SECUPASS' ? new Error(msg(box, 'wrong')) : err;
    }
    input.value = '';
    const pgp = await openpgp();
    const material = await (await api('GET', `/deliveries/${box.dataset.delivery}/release-material`)).json();
    const wraps = [];
    for (const r of material.recipients) {
      const publicKey = await pgp.readKey({ armoredKey: r.publicKey });
      if (publicKey.getFingerprint() !== r.fingerprint) throw new Error('the key does not match its fingerprint');
      const items = [];
      for (const item of material.items) {
        const message = await pgp.readMessage({ binaryMessage: Uint8Array.from(atob(item.ownerWrap), (c) => c.charCodeAt(0)) });
        const [sessionKey] = await pgp.decryptSessionKeys({ message, decryptionKeys: ownerKey });
        const pkesk = await pgp.encryptSessionKey({ data: sessionKey.data, algorithm: sessionKey.algorithm, encryptionKeys: publicKey, format: 'binary' });
        items.push({ fileId: item.fileId, pkesk: btoa(String.fromCharCode(...pkesk)) });
      }
      wraps.push({ recipientId: r.recipientId, fingerprint: r.fingerprint, items });
    }
    await api('POST', `/deliveries/${box.dataset.delivery}/wraps`, { wraps });
    status.textContent = msg(box, 'done');
    location.reload();
  } catch (err) {
    status.textContent = err.message;
    status.className = 'error';
    button.disabled = false;
  }
});
