"""Detection metrics: AP, mAP, weighted mAP and COCO metrics."""
