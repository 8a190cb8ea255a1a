#!/usr/bin/env bash
# Validate the Linux desktop files (seconds; fit for CI): the .desktop entry, the AppStream metainfo, and the
# icon PNGs' sizes. Tools that are missing are reported and skipped, not failed.
set -uo pipefail
cd "$(dirname "$0")"
status=0
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate gan-studio.desktop && echo "ok: gan-studio.desktop" || status=1
else
  echo "skip: desktop-file-validate (apt-get install desktop-file-utils)"
fi
if command -v appstreamcli >/dev/null; then
  appstreamcli validate --no-net io.github.ganstudio.GanStudio.metainfo.xml >/dev/null &&
    echo "ok: io.github.ganstudio.GanStudio.metainfo.xml" ||
    { appstreamcli validate --no-net io.github.ganstudio.GanStudio.metainfo.xml; status=1; }
else
  echo "skip: appstreamcli (apt-get install appstream)"
fi
for size in 16 24 32 48 64 128 256 512; do
  png=icons/hicolor/${size}x${size}/apps/gan-studio.png
  # Width and height are the big-endian words at bytes 16..23 of a PNG.
  dims=$(od -An -tu1 -j16 -N8 "$png" 2>/dev/null | awk '{ printf "%d %d", $3 * 256 + $4, $7 * 256 + $8 }')
  [ "$dims" = "$size $size" ] || { echo "bad: $png is '${dims:-missing}', expected ${size}x${size}"; status=1; }
done
[ $status -eq 0 ] && echo "ok: icons 16-512 px"
exit $status
