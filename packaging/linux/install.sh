#!/usr/bin/env bash
# Install a built Linux bundle as a desktop app (menu entry, icon, AppStream data, `gan-studio` on PATH).
#
#   packaging/linux/install.sh [DIST_DIR]            # per user, into ~/.local (default DIST_DIR: dist/gan-studio)
#   sudo PREFIX=/usr/local packaging/linux/install.sh  # system-wide
#   packaging/linux/install.sh --uninstall
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=${PREFIX:-$HOME/.local}
app_dir=$prefix/lib/gan-studio
share=$prefix/share
sizes="16 24 32 48 64 128 256 512"

refresh() {
  command -v update-desktop-database >/dev/null && update-desktop-database -q "$share/applications" || true
  command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$share/icons/hicolor" || true
}

if [ "${1:-}" = --uninstall ]; then
  rm -rf "$app_dir"
  rm -f "$prefix/bin/gan-studio" "$share/applications/gan-studio.desktop" \
    "$share/metainfo/io.github.ganstudio.GanStudio.metainfo.xml" "$share/icons/hicolor/scalable/apps/gan-studio.svg"
  for size in $sizes; do rm -f "$share/icons/hicolor/${size}x${size}/apps/gan-studio.png"; done
  refresh
  echo "GAN Studio removed from $prefix (your gallery and settings are kept in your user folders)."
  exit 0
fi

dist=${1:-$root/dist/gan-studio}
[ -x "$dist/gan-studio" ] || { echo "No bundle at $dist: build it with packaging/build.sh first." >&2; exit 1; }

mkdir -p "$prefix/bin" "$prefix/lib" "$share/applications" "$share/metainfo" "$share/icons/hicolor/scalable/apps"
rm -rf "$app_dir.new"
cp -a "$dist" "$app_dir.new"
chmod -R u+rwX,go+rX,go-w "$app_dir.new"
rm -rf "$app_dir"
mv "$app_dir.new" "$app_dir"
ln -sfn "$app_dir/gan-studio" "$prefix/bin/gan-studio"

# The .desktop entry runs `gan-studio` from PATH; point it at this install in case PATH lacks $prefix/bin.
sed -e "s|^Exec=gan-studio|Exec=$app_dir/gan-studio|" -e "s|^TryExec=gan-studio|TryExec=$app_dir/gan-studio|" \
  "$here/gan-studio.desktop" >"$share/applications/gan-studio.desktop"
cp "$here/io.github.ganstudio.GanStudio.metainfo.xml" "$share/metainfo/"
cp "$root/resources/icons/gan-studio.svg" "$share/icons/hicolor/scalable/apps/gan-studio.svg"
for size in $sizes; do
  mkdir -p "$share/icons/hicolor/${size}x${size}/apps"
  cp "$here/icons/hicolor/${size}x${size}/apps/gan-studio.png" "$share/icons/hicolor/${size}x${size}/apps/"
done
refresh
echo "GAN Studio installed in $app_dir; start it from the applications menu or with: gan-studio"
