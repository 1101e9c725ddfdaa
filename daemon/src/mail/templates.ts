/**
 * Mail templates: subject, plain text and HTML for every outbox template. Values are escaped in
 * HTML. Level 3/4 mails never contain message text or file names (the core never passes them).
 */
import type { MailTemplate, MailTemplates } from '../core/outbox.ts';

/** A rendered mail. */
export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** A paragraph or a link button. */
type Block = string | { link: string; label: string };

function build(subject: string, blocks: Block[]): RenderedMail {
  const text = blocks.map((b) => (typeof b === 'string' ? b : `${b.label}:\n${b.link}`)).join('\n\n') + '\n\n-- \nsealdrop — encrypted file delivery\n';
  const body = blocks
    .map((b) => (typeof b === 'string' ? `<p>${escapeHtml(b).replace(/\n/g, '<br>')}</p>` : `<p><a href="${escapeHtml(b.link)}">${escapeHtml(b.label)}</a></p>`))
    .join('\n');
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head><body style="font-family:sans-serif;max-width:40em">\n${body}\n<p style="color:#666">sealdrop — encrypted file delivery</p></body></html>\n`;
  return { subject, text, html };
}

const day = (iso: string) => iso.slice(0, 10);

type Renderers = { [K in MailTemplate]: (p: MailTemplates[K]) => RenderedMail };

const RENDERERS: Renderers = {
  invitation: (p) =>
    build(`${p.inviter ?? 'Someone'} sent you files via sealdrop`, [
      p.deliveries > 0
        ? `${p.inviter ?? 'A sender'} has ${p.deliveries === 1 ? 'a delivery' : `${p.deliveries} deliveries`} for you. To receive it, register with sealdrop: set a login password, then set up your SecuPass, a second passphrase that protects your key.`
        : `You have been invited to sealdrop${p.inviter ? ` by ${p.inviter}` : ''}. Register to set your login password.`,
      { link: p.link, label: 'Register' },
      `This link works once and until ${day(p.expiresAt)}. If you did not expect this mail, ignore it.`,
    ]),
  password_reset: (p) =>
    build('Reset your sealdrop password', [
      'Someone asked to reset the login password of your sealdrop account. Your SecuPass and your deliveries are not affected.',
      { link: p.link, label: 'Choose a new password' },
      `This link works once and until ${p.expiresAt.slice(0, 16).replace('T', ' ')} UTC. If you did not ask for this, ignore this mail.`,
    ]),
  delivery_ready: (p) =>
    build(`Delivery from ${p.sender} is ready: ${p.subject}`, [
      `${p.sender} sent you a delivery: "${p.subject}". It is ready to download until ${day(p.expiresAt)}.`,
      ...(p.files.length ? [`Files:\n${p.files.map((f) => `- ${f}`).join('\n')}`] : []),
      { link: p.link, label: 'Open the delivery' },
      ...(p.level >= 3 ? ['The files are end-to-end encrypted; you need your SecuPass to open them.'] : []),
    ]),
  delivery_link: (p) =>
    build(`Delivery from ${p.sender}: ${p.subject}`, [
      `${p.sender} sent you a delivery: "${p.subject}". Anyone with this link can download it until ${day(p.expiresAt)}; keep it to yourself.`,
      { link: p.link, label: 'Download' },
    ]),
  secupass_needed: (p) =>
    build(`Set up your SecuPass to receive a delivery from ${p.sender}`, [
      `${p.sender} sent you an end-to-end encrypted delivery: "${p.subject}". Log in and set up your SecuPass; the sender then releases the delivery to your key.`,
      { link: p.link, label: 'Open sealdrop' },
    ]),
  release_needed: (p) =>
    build(`${p.recipient} activated the SecuPass — release needed`, [
      `${p.recipient} ${p.again ? 'set up a new SecuPass after a reset' : 'activated the SecuPass'}. Check the key fingerprint and release ${p.deliveries.length === 1 ? 'this delivery' : 'these deliveries'} with your own SecuPass:`,
      p.deliveries.map((d) => `- ${d.subject}`).join('\n'),
      { link: p.link, label: 'Release' },
    ]),
  download_receipt: (p) =>
    build(`${p.recipient} downloaded "${p.subject}"`, [`${p.recipient} downloaded your delivery "${p.subject}" (${p.at.slice(0, 16).replace('T', ' ')} UTC).`, { link: p.link, label: 'Open the delivery' }]),
  access_lost: (p) =>
    build(`${p.recipient} lost access to your deliveries`, [
      `An administrator reset the SecuPass of ${p.recipient}. They can no longer open what you released to them:`,
      p.deliveries.map((d) => `- ${d.subject}`).join('\n'),
      'When they set up a new SecuPass you will be asked to release again; nothing has to be uploaded again.',
      { link: p.link, label: 'Open your outbox' },
    ]),
  secupass_reset: (p) =>
    build('Your SecuPass was reset', [
      `An administrator reset your SecuPass. Your old key is destroyed: you have lost access to ${p.lostDeliveries === 1 ? 'one earlier delivery' : `${p.lostDeliveries} earlier deliveries`} for good. The senders have been told and can release them to your new key.`,
      { link: p.link, label: 'Set up a new SecuPass' },
    ]),
  unreleasable: (p) =>
    build(`Delivery "${p.subject}" can no longer be released`, [
      p.role === 'recipient'
        ? `The sender's SecuPass (${p.sender}) was reset before the delivery "${p.subject}" was released to you. It can never be opened; ask the sender to send it again.`
        : `Your SecuPass was reset before "${p.subject}" was released to all recipients. It can never be released; send it again if it is still needed.`,
      { link: p.link, label: 'Open the delivery' },
    ]),
  delivery_revoked: (p) => build(`Delivery "${p.subject}" was withdrawn`, [`${p.sender} withdrew the delivery "${p.subject}". It can no longer be downloaded.`]),
};

/** Renders one outbox template. */
export function renderMail<T extends MailTemplate>(template: T, params: MailTemplates[T]): RenderedMail {
  const render = RENDERERS[template] as (p: MailTemplates[T]) => RenderedMail;
  if (!render) throw new Error(`unknown mail template ${template}`);
  return render(params);
}
