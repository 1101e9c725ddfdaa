/** A client-side release as a test client does it: unwrap the owner's wraps, wrap to each recipient. */
import * as openpgp from 'openpgp';

/** What GET /deliveries/{id}/release-material returns (the parts a release needs). */
export interface ReleaseMaterial {
  items: Array<{ fileId: string; ownerWrap: string }>;
  recipients: Array<{ recipientId: string; fingerprint: string; publicKey: string }>;
}

/** The body of POST /deliveries/{id}/wraps for every recipient in `material` (checks each key's fingerprint). */
export async function clientWraps(material: ReleaseMaterial, ownerKey: openpgp.PrivateKey) {
  const wraps = [];
  for (const r of material.recipients) {
    const pub = await openpgp.readKey({ armoredKey: r.publicKey });
    if (pub.getFingerprint() !== r.fingerprint) throw new Error(`the key of recipient ${r.recipientId} is ${pub.getFingerprint()}, not ${r.fingerprint}`);
    const items = [];
    for (const item of material.items) {
      const [sk] = await openpgp.decryptSessionKeys({ message: await openpgp.readMessage({ binaryMessage: Buffer.from(item.ownerWrap, 'base64') }), decryptionKeys: ownerKey });
      const pkesk = await openpgp.encryptSessionKey({ data: sk?.data as Uint8Array, algorithm: 'aes256', encryptionKeys: pub, format: 'binary' });
      items.push({ fileId: item.fileId, pkesk: Buffer.from(pkesk).toString('base64') });
    }
    wraps.push({ recipientId: r.recipientId, fingerprint: r.fingerprint, items });
  }
  return wraps;
}
