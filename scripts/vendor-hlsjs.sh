#!/bin/sh
# Re-fetch the vendored hls.js from the npm registry and check it against the sha256 the
# repository records (overlay/static/vendor/README.md). The viewer page loads it from the
# node: no CDN at run time. To move to another version, change VERSION and SHA256 together
# (and the README line), run this, and commit the three files it writes.
set -eu
VERSION=1.7.4
SHA256=482cccb3a224554f64d8c2cf0d335dba4a3819bdb726afbfddfe15de4c277d82
FILE=hls.light.min.js
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/overlay/static/vendor"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
cd "$SCRATCH"
npm pack --silent "hls.js@$VERSION" >/dev/null
tar xzf "hls.js-$VERSION.tgz"
echo "$SHA256  package/dist/$FILE" | sha256sum -c -
mkdir -p "$DEST"
cp "package/dist/$FILE" "$DEST/$FILE"
cp package/LICENSE "$DEST/hls.js.LICENSE"
echo "hls.js $VERSION: $DEST/$FILE (sha256 $SHA256)"
