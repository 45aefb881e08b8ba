"""The Qt-free document model: layers of tiled pixels, a mask, commands and their history."""
