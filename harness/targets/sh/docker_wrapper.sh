# Runs every command of a docker target: sh -c WRAPPER leapfrog-exec CWD ARGV...
# The shell is the session leader (docker exec starts one); after the command
# ends it kills what the command left in its session, then exits with the
# command's status.  Read by harness/targets/docker_exec.py.
if [ -n "$1" ]; then cd -- "$1" || exit 125; fi
shift
"$@"
rc=$?
me=$$
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$me" ] && continue
  { read -r l < "$d/stat"; } 2>/dev/null || continue
  l=${l##*) }
  set -- $l
  [ "$4" = "$me" ] && kill -9 "$p" 2>/dev/null
done
exit $rc
