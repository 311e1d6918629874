#!/bin/sh
# leapfrog image build: this call is written down and replayed by a native
# interpreter once every package is in (harness/images/nativebuild.py).
for a in "$@"; do
    [ -n "$a" ] || exec /usr/bin/py3compile "$@"
done
{ for a in "$@"; do printf '%s\0' "$a"; done; printf '\n'; } >> /{work}/py3compile.calls
