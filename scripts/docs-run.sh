#!/usr/bin/env bash
# Docs that cannot drift: runs the commands of README.md and docs/*.md against a real gateway and checks what they
# print.
#
#   scripts/docs-run.sh [--binary target/release/kgen-gateway] [FILE.md...]
#   scripts/docs-run.sh --self-test
#
# A fenced block is run when its info string is `sh run` or `console run` (GitHub highlights by the first word, so
# they render as ordinary sh and console blocks); every other block is text.
#   - `sh run`: the block is a script, run with `bash -euo pipefail` in the repository's root; it passes if it exits 0.
#   - `console run`: a transcript. A line starting with `$ ` is a command (a command whose line ends with `\`, `|` or
#     `&&` goes on over the next lines); the lines after it, up to the next `$ ` line, are what it prints, stdout and stderr
#     together. The commands run in order in one bash process in the repository's root (so `cd` and variables carry
#     over), and the output is compared line by line: `...` alone on a line matches any number of lines (none
#     included), `…` inside a line matches any text within that line (tokens, ids, timings); trailing white space
#     and trailing empty lines are ignored. Exit codes are not checked.
# Before a block runs, `localhost:50051` and `127.0.0.1:50051` in it (commands and expected output) become the gRPC
# address of the gateway this script started, `localhost:9090` and `127.0.0.1:9090` its admin address, and
# `./target/release/kgen-gateway` the binary under test. Blocks see KGEN_GATEWAY_ADDR=http://<gRPC address> (the
# `call` subcommand's address), no other KGEN_* variable, no RUST_LOG, and the pinned tools on PATH (scripts/tools.sh:
# buf).
#
# The gateway: --binary's, or the release build (lib.sh's release_gateway), started once for all blocks with
# `--sandbox --grpc-web --grpc-web-allowed-origins https://tools.example.com,http://localhost:5173` (gRPC-Web on, so
# docs/grpc-web.md runs too; native gRPC is unchanged by it) on port 0 for both listeners; the addresses are read
# from its announcements. Blocks run in file order, README.md first, then docs/*.md by name, against that one
# gateway: a block that opens the circuit breaker or reuses a user id changes what later blocks see.
#
# Each block prints `PASS: FILE:LINE (kind)` or `FAIL: …` with a diff (or the script's output); the last line is
# `N passed, N failed`, and the exit status is non-zero if any block failed. Each block has DOCS_RUN_TIMEOUT seconds
# (default 120). `--self-test` runs the extractor and the matcher on built-in samples (no gateway, no build).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
lib_reports_checks=1
lib_keep_work_on_failure=1

binary=""
self_test=0
files=()
block_timeout=${DOCS_RUN_TIMEOUT:-120}
allowed_origins="https://tools.example.com,http://localhost:5173"

die() {
  printf 'docs-run: %s\n' "$*" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --self-test) self_test=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown argument: $1 (usage: scripts/docs-run.sh [--binary PATH] [FILE.md...] | --self-test)" ;;
    *) files+=("$1"); shift ;;
  esac
done

# === extraction ===

# extract FILE OUTDIR: writes each runnable block of FILE as OUTDIR/NNN.{kind,where,text} (kind `sh` or `console`,
# where `FILE:LINE` of the opening fence, text the block's lines without the fences and the fence's indentation).
# Block numbers continue from the files already in OUTDIR.
extract() {
  local file=$1 outdir=$2 name=${3:-$1}
  local n line number=0 in_block=0 runnable=0 fence="" indent="" kind="" start=0 info text=""
  n=$(find "$outdir" -name '*.kind' | wc -l)
  while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    line=${line%$'\r'}
    if [ "$in_block" -eq 0 ]; then
      if [[ $line =~ ^([[:space:]]*)(\`\`\`+|~~~+)[[:space:]]*(.*)$ ]]; then
        in_block=1
        indent=${BASH_REMATCH[1]}
        fence=${BASH_REMATCH[2]}
        info=${BASH_REMATCH[3]}
        start=$number
        text=""
        runnable=0
        if [[ $info =~ ^(sh|console)[[:space:]]+run([[:space:]]|$) ]]; then
          runnable=1
          kind=${BASH_REMATCH[1]}
        fi
      fi
      continue
    fi
    # The closing fence: the same character, at least as long, nothing after it.
    if [[ $line =~ ^[[:space:]]*(\`\`\`+|~~~+)[[:space:]]*$ ]] && [ "${BASH_REMATCH[1]:0:1}" = "${fence:0:1}" ] &&
      [ "${#BASH_REMATCH[1]}" -ge "${#fence}" ]; then
      in_block=0
      if [ "$runnable" -eq 1 ]; then
        n=$((n + 1))
        local base
        base=$(printf '%s/%03d' "$outdir" "$n")
        printf '%s\n' "$kind" >"$base.kind"
        printf '%s:%s\n' "$name" "$start" >"$base.where"
        printf '%s' "$text" >"$base.text"
      fi
      continue
    fi
    if [ "$runnable" -eq 1 ]; then
      [ -n "$indent" ] && line=${line#"$indent"}
      text+="$line"$'\n'
    fi
  done <"$file"
  [ "$in_block" -eq 0 ] || die "$name:$start: a fenced block is never closed"
}

# === matching ===

# line_pattern EXPECTED: the bash pattern for one expected line: literal text, with `…` matching anything.
line_pattern() {
  local rest=$1 pattern="" part
  while :; do
    part=${rest%%…*}
    # Every character but letters, digits and spaces escaped, so *, ?, [ and extglob's ( | ) are literal.
    pattern+=$(printf '%s' "$part" | sed 's/[^[:alnum:] ]/\\&/g')
    [ "$part" = "$rest" ] && break
    pattern+='*'
    rest=${rest#*…}
  done
  printf '%s' "$pattern"
}

# Lines to compare: trailing white space (and CR) dropped, then trailing empty lines.
read_lines() {
  local -n into=$1
  local line
  into=()
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    line=${line%"${line##*[![:space:]]}"}
    into+=("$line")
  done <"$2"
  while [ "${#into[@]}" -gt 0 ] && [ -z "${into[-1]}" ]; do unset 'into[-1]'; done
}

match_expected=()
match_patterns=()
match_actual=()
# match_from I J: does expected[I..] match actual[J..]?
match_from() {
  local i=$1 j=$2 k
  if [ "$i" -eq "${#match_expected[@]}" ]; then
    [ "$j" -eq "${#match_actual[@]}" ]
    return
  fi
  if [ "${match_expected[i]}" = "..." ]; then
    for ((k = j; k <= ${#match_actual[@]}; k++)); do
      match_from $((i + 1)) "$k" && return 0
    done
    return 1
  fi
  [ "$j" -lt "${#match_actual[@]}" ] || return 1
  # shellcheck disable=SC2053 # the right side is a pattern on purpose
  [[ ${match_actual[j]} == ${match_patterns[i]} ]] || return 1
  match_from $((i + 1)) $((j + 1))
}

# output_matches EXPECTED_FILE ACTUAL_FILE: the console rule; on a mismatch prints a diff.
output_matches() {
  local line
  read_lines match_expected "$1"
  read_lines match_actual "$2"
  match_patterns=()
  for line in "${match_expected[@]}"; do match_patterns+=("$(line_pattern "$line")"); done
  match_from 0 0 && return 0
  diff -u --label "expected (\`...\` and \`…\` are wildcards)" --label actual \
    <(printf '%s\n' "${match_expected[@]}") <(printf '%s\n' "${match_actual[@]}") | sed 's/^/    /' || true
  return 1
}

# === running ===

grpc_addr=""
admin_addr=""
# substitute FILE: the block as run against this gateway.
substitute() {
  local text
  text=$(<"$1")
  if [ -n "$grpc_addr" ]; then
    text=${text//localhost:50051/$grpc_addr}
    text=${text//127.0.0.1:50051/$grpc_addr}
    text=${text//localhost:9090/$admin_addr}
    text=${text//127.0.0.1:9090/$admin_addr}
    text=${text//.\/target\/release\/kgen-gateway/$binary}
  fi
  printf '%s\n' "$text"
}

# The environment of the blocks: no KGEN_* setting of the caller's leaks into a gateway a block starts, and logs are
# at the default level.
block_env=(-u RUST_LOG)
while IFS= read -r name; do
  block_env+=(-u "$name")
done < <(compgen -e | grep '^KGEN_' || true)

run_in_root() {
  (cd "$root" && env ${block_env[@]+"${block_env[@]}"} "${extra_env[@]}" timeout --kill-after=5 "$block_timeout" "$@")
}
extra_env=()

# timed_out START: did a block started at $SECONDS=START use up its time (and so was stopped by `timeout`)?
timed_out() { [ $((SECONDS - $1)) -ge "$block_timeout" ]; }

# run_sh BASE: an `sh run` block passes when it exits 0.
run_sh() {
  local base=$1 rc=0 start=$SECONDS
  substitute "$base.text" >"$base.sh"
  run_in_root bash -euo pipefail "$base.sh" </dev/null >"$base.out" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] && return 0
  timed_out "$start" && echo "    timed out after ${block_timeout}s"
  echo "    exited $rc; it printed:"
  sed 's/^/    | /' "$base.out"
  return 1
}

# continues LINE: does a command line go on over the next line (it ends with \, | or &&)?
continues() { [[ $1 =~ (\\|\||&&)[[:space:]]*$ ]]; }

# run_console BASE: a `console run` block passes when every command printed what follows it.
run_console() {
  local base=$1 line n=0 failed=0 i in_command=0 start
  local script="$base.console.sh"
  substitute "$base.text" >"$base.sub"
  {
    echo "cd $(printf '%q' "$root")"
    while IFS= read -r line || [ -n "$line" ]; do
      if [ "$in_command" -eq 1 ]; then
        printf '%s\n' "$line"
        continues "$line" && continue
        printf '} >%q 2>&1 </dev/null\n' "$base.$n.actual"
        in_command=0
        continue
      fi
      if [[ $line == '$ '* ]]; then
        n=$((n + 1))
        : >"$base.$n.expected"
        printf '{ %s\n' "${line#'$ '}"
        if continues "$line"; then
          in_command=1
        else
          printf '} >%q 2>&1 </dev/null\n' "$base.$n.actual"
        fi
      elif [ "$n" -gt 0 ]; then
        printf '%s\n' "$line" >>"$base.$n.expected"
      elif [ -n "${line//[[:space:]]/}" ]; then
        echo "    the block prints something before its first \`\$ \` command: $line"
        return 1
      fi
    done <"$base.sub"
    [ "$in_command" -eq 0 ] || printf '} >%q 2>&1 </dev/null\n' "$base.$n.actual"
  } >"$script"
  [ "$n" -gt 0 ] || { echo "    no \`\$ \` command in the block"; return 1; }
  start=$SECONDS
  # The script's exit status is its last command's (exit codes are not checked): only the time says it was stopped.
  run_in_root bash "$script" </dev/null >"$base.console.out" 2>&1 || true
  if timed_out "$start"; then
    echo "    timed out after ${block_timeout}s"
    failed=1
  fi
  for ((i = 1; i <= n; i++)); do
    [ -f "$base.$i.actual" ] || : >"$base.$i.actual"
    if ! output_matches "$base.$i.expected" "$base.$i.actual" >"$base.$i.diff"; then
      echo "    command $i of $n: $(grep -m 1 -F -- '$ ' <(grep '^\$ ' "$base.sub" | sed -n "${i}p"))"
      cat "$base.$i.diff"
      failed=1
    fi
  done
  if [ -s "$base.console.out" ]; then
    echo "    the block's shell said:"
    sed 's/^/    | /' "$base.console.out"
  fi
  [ "$failed" -eq 0 ]
}

run_block() {
  local base=$1
  case $(<"$base.kind") in
    sh) run_sh "$base" ;;
    console) run_console "$base" ;;
  esac
}

run_blocks() {
  local dir=$1 base
  for base in "$dir"/*.kind; do
    [ -e "$base" ] || continue
    base=${base%.kind}
    check "$(<"$base.where") ($(<"$base.kind") run)" run_block "$base"
  done
}

# === self-test ===

self_test() {
  local dir="$work/self-test" sample="$work/self-test/sample.md" count
  mkdir -p "$dir"
  # The sample: five runnable blocks (two of which must fail) among blocks that are not run.
  cat >"$sample" <<'SAMPLE'
# A sample

```sh
echo "not run: plain sh"
exit 1
```

```console run
$ printf 'one\ntwo\nthree\n'
one
...
three
$ echo 'id=3f9c token=abc.def [x]*?'
id=… token=… [x]*?
$ cd scripts && pwd | sed 's|.*/||'
scripts
$ printf 'a\n' && \
  printf 'b\n'
a
b
$ printf 'x\ny\n' |
  grep y &&
  echo z
y
z
$ printf 'only\n'
...
only
...
$ true
```

```sh run
test "$(basename "$PWD")" != scripts   # each block starts in the repository's root
echo ok
```

- in a list:

  ```console run
  $ echo indented
  indented
  ```

```console run
$ printf 'first\nsecond\n'
first
third
```

```sh run
false
```

````text
```console run
$ not a block: inside a four-backtick fence
```
````
SAMPLE
  extract "$sample" "$dir" "sample.md"
  count=$(find "$dir" -name '*.kind' | wc -l)
  check_eq "the sample holds 5 runnable blocks" "$count" 5
  check "block 1 is console run at sample.md:8" test "$(<"$dir/001.kind") $(<"$dir/001.where")" = "console sample.md:8"
  check "block 3 (in a list) loses its indentation" test "$(head -n 1 "$dir/003.text")" = '$ echo indented'
  local sh_line
  sh_line=$(grep -n -m 1 '^```sh run' "$sample" | cut -d: -f1)
  check "block 2 is sh run at the line of its fence (sample.md:$sh_line)" \
    test "$(<"$dir/002.kind") $(<"$dir/002.where")" = "sh sample.md:$sh_line"
  check "console: ... spans lines, … spans text, [*? are literal, cd carries over, \\ | && continue, ... matches none" \
    run_block "$dir/001"
  check "sh run: exits 0 in the repository's root" run_block "$dir/002"
  check "console: an indented block runs" run_block "$dir/003"
  check "console: a wrong line fails (this one must fail)" negate run_block "$dir/004"
  check "sh run: a non-zero exit fails (this one must fail)" negate run_block "$dir/005"

  # The matcher alone, on expected/actual pairs.
  local case_dir="$dir/matcher" i=0
  mkdir -p "$case_dir"
  matcher_case() { # WANT EXPECTED ACTUAL (lines separated by |)
    i=$((i + 1))
    tr '|' '\n' <<<"$2" >"$case_dir/$i.expected"
    tr '|' '\n' <<<"$3" >"$case_dir/$i.actual"
    if [ "$1" = match ]; then
      check "matcher: '$2' matches '$3'" output_matches "$case_dir/$i.expected" "$case_dir/$i.actual"
    else
      check "matcher: '$2' does not match '$3'" negate output_matches "$case_dir/$i.expected" "$case_dir/$i.actual"
    fi
  }
  matcher_case match 'a|...|d' 'a|b|c|d'
  matcher_case match 'a|...|b' 'a|b'
  matcher_case match '...' ''
  matcher_case match '...|x|...|x' 'x|x|y|x'
  matcher_case match 'took …ms (… attempts)' 'took 12.5ms (3 attempts)'
  matcher_case match '…|b' '|b'
  matcher_case match 'a  ' 'a'
  matcher_case nomatch 'a|b' 'a|b|c'
  matcher_case nomatch 'a|...|d' 'a|b|c'
  matcher_case nomatch 'x…y' 'x|y'
  matcher_case nomatch 'a*' 'abc'
  matcher_case nomatch 'a?c' 'abc'
  matcher_case nomatch '[ab]' 'a'
  matcher_case nomatch '@(a|b)' 'a'
  matcher_case nomatch 'ok' 'OK'
}
negate() { ! "$@" >/dev/null; }

if [ "$self_test" -eq 1 ]; then
  self_test
  finish
  exit
fi

# === the real run ===

[ "${#files[@]}" -gt 0 ] || {
  files=("$root/README.md")
  for file in "$root"/docs/*.md; do files+=("$file"); done
}
blocks="$work/blocks"
mkdir -p "$blocks"
for file in "${files[@]}"; do
  [ -f "$file" ] || die "no such file: $file"
  extract "$file" "$blocks" "$(realpath --relative-to="$root" "$file")"
done

tools_path=$("$root/scripts/tools.sh") # an assignment, so that a failed install stops the script
eval "$tools_path"
release_gateway
[ -x "$binary" ] || die "no gateway binary at $binary"
binary=$(realpath "$binary")

start_bg gateway env ${block_env[@]+"${block_env[@]}"} RUST_LOG=info "$binary" --sandbox --grpc-web \
  --grpc-web-allowed-origins "$allowed_origins" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --log-format json
gateway_pid=$started_pid
admin_addr=$(wait_announced gateway 'admin endpoints serving' "$gateway_pid")
grpc_addr=$(wait_announced gateway 'kgen-gateway serving gRPC' "$gateway_pid")
echo "docs-run: gateway pid $gateway_pid serving gRPC on $grpc_addr, admin on $admin_addr ($binary)"
extra_env=(KGEN_GATEWAY_ADDR="http://$grpc_addr")

run_blocks "$blocks"
if ! kill -0 "$gateway_pid" 2>/dev/null; then
  echo "FAIL: the gateway exited while the blocks ran; its last lines:"
  tail -n 20 "$work/gateway.log"
  checks_failed=$((checks_failed + 1))
fi
finish
