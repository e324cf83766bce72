"""`python -m keras_modern_cnn.cli`: the `kmc` command (importing this module runs nothing)."""

import sys

from keras_modern_cnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
