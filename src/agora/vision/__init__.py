"""Reading images: what they are (:mod:`.probe`), the text inside them (:mod:`.ocr`), and
whether they show explicit nudity (:mod:`.explicit`); :func:`.analyse.analyse_image` does all
three on one image's bytes.

A kit: it knows no domain and no store. The models (PP-OCRv4 from ``rapidocr-onnxruntime``,
NudeNet's ``320n.onnx``) ship inside their wheels and run on onnxruntime's CPU provider; nothing
is fetched at run time.
"""
