"""Lightning callbacks that decide when compression steps happen."""
