"""Tests of the whole-job pipeline and the method training sets."""
