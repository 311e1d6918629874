# sh -c KILLER leapfrog-kill TOKEN: SIGKILL every process carrying the mark
# LEAPFROG_EXEC=TOKEN and every process in a session led by one of them.
# Never PID 1's session (the container itself).  Read by
# harness/targets/docker_exec.py.
t=$1
me=$$
{ read -r l < /proc/1/stat; } 2>/dev/null
l=${l##*) }
set -- $l
init=$4
for round in 1 2 3 4 5; do
  victims=
  sids=" "
  for f in $(grep -lxzF "LEAPFROG_EXEC=$t" /proc/[0-9]*/environ 2>/dev/null); do
    p=${f#/proc/}
    p=${p%/environ}
    [ "$p" = "$me" ] || [ "$p" = 1 ] && continue
    victims="$victims $p"
    { read -r l < "/proc/$p/stat"; } 2>/dev/null || continue
    l=${l##*) }
    set -- $l
    [ "$4" != 0 ] && [ "$4" != "$init" ] && sids="$sids$4 "
  done
  if [ "$sids" != " " ]; then
    for d in /proc/[0-9]*; do
      p=${d#/proc/}
      [ "$p" = "$me" ] || [ "$p" = 1 ] && continue
      { read -r l < "$d/stat"; } 2>/dev/null || continue
      l=${l##*) }
      set -- $l
      case "$sids" in *" $4 "*) victims="$victims $p" ;; esac
    done
  fi
  [ -z "$victims" ] && exit 0
  kill -9 $victims 2>/dev/null
  sleep 0.2
done
