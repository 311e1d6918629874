#!/bin/sh
# leapfrog image build: Debian's {prog} for the build host, the same version as the image's.
exec {argv} "$@"
