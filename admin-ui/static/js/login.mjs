// Login page: keeps a slow salted hash of the password in this tab only, so the SecuPass page
// can refuse a SecuPass equal to the login password without sending either anywhere.
import { localCheckHash } from './common.mjs';

const form = document.getElementById('login-form');
let hashed = false;
form?.addEventListener('submit', async (ev) => {
  if (hashed) return;
  ev.preventDefault();
  const email = form.elements.email.value;
  const password = form.elements.password.value;
  try {
    sessionStorage.setItem('sd-pw-check', await localCheckHash(email, password));
  } catch {
    /* the check is a convenience; logging in does not depend on it */
  }
  hashed = true;
  form.submit();
});
