import sys

from keras_modern_cnn.cli import main

sys.exit(main())
