# sentence-transformers reads its model-card templates and checks package versions through metadata.
from PyInstaller.utils.hooks import collect_data_files, copy_metadata

datas = collect_data_files("sentence_transformers")
for dist in (
    "sentence-transformers",
    "transformers",
    "tokenizers",
    "huggingface-hub",
    "safetensors",
    "torch",
):
    datas += copy_metadata(dist)
