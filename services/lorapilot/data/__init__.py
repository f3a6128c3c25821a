"""Dataset folders as training sees them, for every model family alike.

`images` decodes and checks files, `captions` reads and renders captions, `buckets` groups images
by aspect ratio and batches them, `dataset` turns the TrainSpec's datasets into a plan of items.
Nothing here knows which model family will train on the result.
"""
