"""Padding, MobileNet v1 backbone, SSD head, anchors and losses."""
