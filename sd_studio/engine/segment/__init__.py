"""Smart masks: Segment Anything (points, boxes), GrabCut without a model, and subject/background selection."""
