#!/bin/sh
# The one-shot `parties` service of compose.yaml: NATS accounts and credentials from the parties file, laid out so
# that each container mounts only its own part of the `parties` volume (volume subpaths):
#
#   $OUT/all/                 every party's credentials (hand each to its party) and accounts.conf; keys are kept
#                             across runs (`reintegration parties config` keeps existing credentials files)
#   $OUT/server/accounts.conf what nats.conf includes (public keys only)
#   $OUT/<service>/service-<service>.creds
#                             one folder per service, mounted read-only by that service alone
#
# Runs as the image's user (nobody), which owns the volume's mount point in the image. Safe to run again.
set -eu

PARTIES_FILE=${PARTIES_FILE:-/etc/reintegration/parties.toml}
OUT=${PARTIES_OUT:-/var/lib/reintegration/parties}
SERVICES=${PARTIES_SERVICES:-"intake relay deadlines benefits disclosures feeds audit"}
# Non-empty: new keys for every party (hand the new files out, restart every service).
ROTATE=${PARTIES_ROTATE:-}

umask 077
reintegration parties config "$PARTIES_FILE" --out "$OUT/all" ${ROTATE:+--rotate}

place() {  # place SOURCE DIR NAME MODE: copy atomically (a running reader never sees half a file)
    mkdir -p "$2"
    cp "$1" "$2/.$3.tmp"
    chmod "$4" "$2/.$3.tmp"
    mv -f "$2/.$3.tmp" "$2/$3"
}

chmod 755 "$OUT"
place "$OUT/all/accounts.conf" "$OUT/server" accounts.conf 644
chmod 755 "$OUT/server"
for service in $SERVICES; do
    creds="service-$service.creds"
    if [ ! -f "$OUT/all/$creds" ]; then
        echo "parties: $PARTIES_FILE lists no service $service (services = [...])" >&2
        exit 1
    fi
    place "$OUT/all/$creds" "$OUT/$service" "$creds" 600
    chmod 700 "$OUT/$service"
done
echo "parties: accounts in $OUT/server/accounts.conf; credentials of $SERVICES placed"
