#!/usr/bin/env bash
# The whole level-4 process with curl alone, against a daemon started with `npm start` in this
# folder (file-transport mail in ./data/mail). Needs curl, jq, python3 and gpg.
# Run from the repository root:  bash docs/walkthrough.sh
set -euo pipefail
S=${SEALDROP_URL:-http://127.0.0.1:8080}/api/v1
J='content-type: application/json'

# Newest link token of a kind ("register", "password-reset") mailed to an address.
mailtoken() {
  python3 - "$1" "$2" <<'PY'
import email, glob, os, re, sys
to, page = sys.argv[1], sys.argv[2]
for f in sorted(glob.glob('data/mail/*.eml'), key=os.path.getmtime, reverse=True):
    m = email.message_from_binary_file(open(f, 'rb'))
    if to not in m['To']: continue
    for part in m.walk():
        if part.get_content_type() == 'text/plain':
            hit = re.search(r'/' + page + r'\?token=([A-Za-z0-9_-]+)', part.get_payload(decode=True).decode())
            if hit: print(hit.group(1)); sys.exit(0)
sys.exit('no such mail')
PY
}

echo "== accounts (server CLI)"
printf 'admin password 4711\n' | node daemon/bin/sealdrop.js account add --email admin@example.org --role admin --password-stdin || true
printf 'alice password 4711\n' | node daemon/bin/sealdrop.js account add --email alice@example.org --role member --password-stdin || true

echo "== Alice logs in and activates her SecuPass"
A=$(curl -sf "$S/session" -H "$J" -d '{"email":"alice@example.org","password":"alice password 4711"}' | jq -r .token)
curl -sf "$S/secupass" -H "Authorization: Bearer $A" -H "$J" -d '{"secupass":"alice secupass 4711"}' | jq -c '.key | {fingerprint}' || echo "(already active)"

echo "== Alice sends a level-4 delivery to new@example.org"
head -c 1000000 /dev/urandom > /tmp/walk-contract.bin
ID=$(curl -sf "$S/deliveries" -H "Authorization: Bearer $A" -H "$J" -d '{"to":["new@example.org"],"subject":"Contract","message":"Please sign by Friday","level":4}' | jq -r .id)
curl -sf -T /tmp/walk-contract.bin "$S/deliveries/$ID/files/contract.bin" -H "Authorization: Bearer $A" | jq -c .file
curl -sf -X POST "$S/deliveries/$ID/send" -H "Authorization: Bearer $A" | jq -c '.delivery.recipients[] | {email, state}'

echo "== The recipient registers with the mailed token, logs in, activates a SecuPass"
sleep 2
T=$(mailtoken new@example.org register)
curl -sf "$S/registration" -H "$J" -d "{\"token\":\"$T\",\"password\":\"new user password 1\"}" | jq -c .account.state
N=$(curl -sf "$S/session" -H "$J" -d '{"email":"new@example.org","password":"new user password 1"}' | jq -r .token)
curl -sf "$S/secupass" -H "Authorization: Bearer $N" -H "$J" -d '{"secupass":"new user secupass 1"}' | jq -c '.key | {fingerprint}'

echo "== Alice sees the notification, checks the fingerprint and releases"
curl -sf "$S/notifications" -H "Authorization: Bearer $A" | jq -c '.notifications[0] | {kind, data}'
curl -sf "$S/deliveries/$ID/release-material" -H "Authorization: Bearer $A" | jq -c '.recipients[] | {email, fingerprint, registeredFrom, keyChanged}'
curl -sf "$S/deliveries/$ID/release" -H "Authorization: Bearer $A" -H "$J" -d '{"secupass":"alice secupass 4711"}' | jq -c '.delivery.recipients[] | {email, state}'

echo "== The recipient downloads; gpg decrypts with a copy of the key"
FID=$(curl -sf "$S/deliveries/$ID" -H "Authorization: Bearer $N" | jq -r '.delivery.files[0].id')
curl -sf -o /tmp/walk-contract.bin.pgp "$S/deliveries/$ID/files/$FID" -H "Authorization: Bearer $N"
curl -sf -o /tmp/walk-message.txt.pgp "$S/deliveries/$ID/message" -H "Authorization: Bearer $N"
export GNUPGHOME=$(mktemp -d)
curl -sf "$S/secupass/key" -H "Authorization: Bearer $N" | jq -r .key.privateKey > "$GNUPGHOME/key.asc"
# GnuPG 2.2 cannot import argon2-protected keys: unlock a copy with openpgp.js first.
node --input-type=module -e "
import * as openpgp from 'openpgp'; import fs from 'node:fs';
const k = await openpgp.decryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey: fs.readFileSync('$GNUPGHOME/key.asc','utf8') }), passphrase: 'new user secupass 1' });
fs.writeFileSync('$GNUPGHOME/key.asc', k.armor());"
gpg --batch --quiet --import "$GNUPGHOME/key.asc"
gpg --batch --quiet --decrypt /tmp/walk-contract.bin.pgp | cmp - /tmp/walk-contract.bin && echo "contract.bin: identical"
gpg --batch --quiet --decrypt /tmp/walk-message.txt.pgp; echo

echo "== An admin resets the recipient's SecuPass: access is lost"
AD=$(curl -sf "$S/session" -H "$J" -d '{"email":"admin@example.org","password":"admin password 4711"}' | jq -r .token)
curl -sf -X POST "$S/admin/accounts/new@example.org/secupass-reset" -H "Authorization: Bearer $AD" | jq -c .
curl -s "$S/deliveries/$ID/files/$FID" -H "Authorization: Bearer $N" | jq -c .

echo "== New SecuPass; Alice re-releases without uploading again"
curl -sf "$S/secupass" -H "Authorization: Bearer $N" -H "$J" -d '{"secupass":"new user secupass 2"}' | jq -c '.key | {fingerprint}'
curl -sf "$S/deliveries/$ID/release-material" -H "Authorization: Bearer $A" | jq -c '.recipients[] | {email, keyChanged}'
curl -sf "$S/deliveries/$ID/release" -H "Authorization: Bearer $A" -H "$J" -d '{"secupass":"alice secupass 4711"}' | jq -c '.delivery.recipients[] | {email, state}'
curl -sf -o /dev/null -w 'download after re-release: HTTP %{http_code}\n' "$S/deliveries/$ID/files/$FID" -H "Authorization: Bearer $N"
gpgconf --kill gpg-agent; rm -rf "$GNUPGHOME"
