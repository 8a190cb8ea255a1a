#!/usr/bin/env bash
# Build the GAN Studio desktop bundle (PyInstaller, one folder) from a clean checkout:
#
#   packaging/build.sh                 # creates build/venv-package, installs .[package], builds dist/gan-studio/
#   GAN_STUDIO_BUILD_VENV=.venv packaging/build.sh     # use an existing virtual environment instead
#
# Environment (all optional):
#   GAN_STUDIO_BUILD_VENV   virtual environment to build in (created if missing; default build/venv-package)
#   GAN_STUDIO_TORCH_INDEX  extra package index for torch, e.g. https://download.pytorch.org/whl/cpu where
#                           PyPI's default torch for this platform is the CUDA build (Linux x86-64)
#   GAN_STUDIO_SKIP_INSTALL=1   do not pip-install into the environment (it is ready)
#   GAN_STUDIO_REQUIRE_DEFAULT_MODEL=1   fail when resources/models/emoji/ is missing (set it for releases)
#   GAN_STUDIO_BUNDLE_MP4=1 also install and ship imageio-ffmpeg (+165 MB) so animations can be saved as MP4
#   PYTHON                  interpreter used to create the venv (default python3)
#
# Output: dist/gan-studio/ (Linux, Windows) or "dist/GAN Studio.app" (macOS). Then: packaging/smoke.sh dist/gan-studio
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

venv=${GAN_STUDIO_BUILD_VENV:-build/venv-package}
case "$(uname -s)" in
  MINGW* | MSYS* | CYGWIN*) bin=Scripts ;;
  *) bin=bin ;;
esac
if [ ! -x "$venv/$bin/python" ] && [ ! -x "$venv/$bin/python.exe" ]; then
  echo "build: creating $venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
python=$venv/$bin/python
[ -x "$python" ] || python=$venv/$bin/python.exe

if [ "${GAN_STUDIO_SKIP_INSTALL:-0}" != 1 ]; then
  extras=package
  [ "${GAN_STUDIO_BUNDLE_MP4:-0}" != 1 ] || extras=package,video
  echo "build: installing .[$extras] into $venv (torch pinned by constraints/ci.txt)"
  index_args=()
  [ -z "${GAN_STUDIO_TORCH_INDEX:-}" ] || index_args=(--extra-index-url "$GAN_STUDIO_TORCH_INDEX")
  "$python" -m pip install -q --disable-pip-version-check ${index_args[@]+"${index_args[@]}"} -c constraints/ci.txt -e ".[$extras]"
  echo "build: installed in $(($(date +%s) - started)) s"
fi

"$python" - <<'PY'
import torch
cuda = torch.version.cuda
print(f"build: torch {torch.__version__} ({'CUDA ' + cuda if cuda else 'CPU'} build)")
if cuda:
    print("build: note: this is a CUDA build of torch; the bundle keeps its CUDA libraries (several GB). "
          "For the CPU bundle install the CPU wheel (GAN_STUDIO_TORCH_INDEX=https://download.pytorch.org/whl/cpu).")
PY

# The Linux icons are rendered from resources/icons/gan-studio.svg; refresh them when the SVG is newer.
svg=resources/icons/gan-studio.svg
png512=packaging/linux/icons/hicolor/512x512/apps/gan-studio.png
if [ "$svg" -nt "$png512" ]; then
  if command -v rsvg-convert >/dev/null; then
    echo "build: rendering app icons from $svg"
    for size in 16 24 32 48 64 128 256 512; do
      mkdir -p "packaging/linux/icons/hicolor/${size}x${size}/apps"
      rsvg-convert -w $size -h $size "$svg" -o "packaging/linux/icons/hicolor/${size}x${size}/apps/gan-studio.png"
    done
  else
    echo "build: note: $svg is newer than the PNG icons, but rsvg-convert (librsvg2-bin) is missing; keeping them"
  fi
fi

echo "build: running PyInstaller"
pyinstaller_started=$(date +%s)
"$python" -m PyInstaller --noconfirm --clean --log-level WARN \
  --workpath build/pyinstaller --distpath dist packaging/gan-studio.spec
finished=$(date +%s)

if [ -d "dist/GAN Studio.app" ]; then out="dist/GAN Studio.app"; else out=dist/gan-studio; fi
# PyInstaller keeps each file's mode; a 0600 weight file would be unreadable to other users once installed.
chmod -R u+rwX,go+rX,go-w "$out"
size=$(du -sh "$out" | cut -f1)
files=$(find "$out" -type f | wc -l | tr -d ' ')
echo "build: $out: $size in $files files"
echo "build: largest parts:"
{ du -sk "$out"/_internal/* "$out"/Contents/Frameworks/* 2>/dev/null || true; } | sort -rn |
  awk 'NR <= 8 { printf "  %7.1f MiB  %s\n", $1 / 1024, $2 }'
echo "build: PyInstaller $((finished - pyinstaller_started)) s, total $((finished - started)) s"
echo "build: smoke-test it with: packaging/smoke.sh $out"
