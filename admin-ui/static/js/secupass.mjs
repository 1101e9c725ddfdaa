// SecuPass setup: the key pair is made here (v4 curve25519), its private part encrypted under the
// SecuPass with argon2, and only the keys are sent. The SecuPass never leaves this page.
import { api, localCheckHash, msg, openpgp } from './common.mjs';

const form = document.getElementById('secupass-form');
const status = document.getElementById('secupass-status');
const strength = document.getElementById('strength');
const input = document.getElementById('f-secupass');
const again = document.getElementById('f-secupass2');
const button = document.getElementById('secupass-submit');

function score(s) {
  let classes = 0;
  for (const re of [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/]) if (re.test(s)) classes++;
  const words = s.trim().split(/\s+/).length;
  const bits = s.length * Math.log2(10 + classes * 16) + (words >= 3 ? 10 : 0);
  return bits >= 90 ? 'strong' : bits >= 60 ? 'fair' : 'weak';
}

function fieldError(field, text) {
  const box = field.closest('.field');
  let p = box.querySelector('.error');
  if (!text) {
    p?.remove();
    field.removeAttribute('aria-invalid');
    return;
  }
  if (!p) {
    p = document.createElement('p');
    p.className = 'error';
    p.id = `e-${field.name}`;
    p.setAttribute('role', 'alert');
    box.append(p);
  }
  p.textContent = text;
  field.setAttribute('aria-invalid', 'true');
  field.setAttribute('aria-describedby', `${field.getAttribute('aria-describedby') ?? ''} ${p.id}`.trim());
}

input.addEventListener('input', () => {
  const s = score(input.value);
  strength.textContent = input.value ? msg(form, `strength${s[0].toUpperCase()}${s.slice(1)}`) : '';
});

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const secupass = input.value;
  const min = Number(form.dataset.min);
  fieldError(input, '');
  fieldError(again, '');
  if ([...secupass].length < min) return fieldError(input, msg(form, 'short'));
  if (secupass !== again.value) return fieldError(again, msg(form, 'differ'));
  const stored = sessionStorage.getItem('sd-pw-check');
  if (stored && stored === (await localCheckHash(form.dataset.email, secupass))) return fieldError(input, msg(form, 'same'));
  button.disabled = true;
  status.textContent = msg(form, 'working');
  try {
    const pgp = await openpgp();
    const { privateKey } = await pgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ email: form.dataset.email }], format: 'object', config: { v6Keys: false, aeadProtect: false } });
    const encrypted = await pgp.encryptKey({
      privateKey,
      passphrase: secupass,
      config: { s2kType: pgp.enums.s2k.argon2, aeadProtect: true, s2kArgon2Params: { passes: Number(form.dataset.passes), parallelism: Number(form.dataset.parallelism), memoryExponent: Number(form.dataset.memory) } },
    });
    await api('POST', '/secupass', { publicKey: privateKey.toPublic().armor(), privateKey: encrypted.armor() });
    input.value = '';
    again.value = '';
    status.textContent = msg(form, 'done');
    location.assign('/inbox');
  } catch (err) {
    status.textContent = err.message;
    button.disabled = false;
  }
});

// The form is handled here from now on (the page renders the button disabled: see secupass.njk).
button.disabled = false;
