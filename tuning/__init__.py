"""KerasTuner hypermodels for every family (installed as `keras_modern_cnn.tuning`)."""
