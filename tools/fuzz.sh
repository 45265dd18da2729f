#!/bin/sh
# make fuzz: builds each fuzz/fuzz_*.c with clang's libFuzzer + ASan/UBSan and
# runs it for FUZZ_SECONDS (default 60) from its seeds. Corpora grow under
# fuzz/corpus-NAME/ (not committed); a crash leaves fuzz/crash-* and fails.
set -e
cd "$(dirname "$0")/.."
secs=${1:-60}
out=build/fuzz
mkdir -p "$out"
flags="-std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Isrc $(pkg-config --cflags luajit openssl)"
libs="$(pkg-config --libs luajit openssl) -lev -lm"
lib_src="src/core/buf.c src/core/util.c src/core/log.c src/core/arena.c src/core/linebuf.c src/core/conf_locate.c src/smtp/smtp_parse.c src/smtp/smtp_path.c src/smtp/smtp_data.c src/dir/dir_file_parse.c src/dir/dir_addr.c src/mime/mime_util.c src/mime/mime_header.c src/mime/mime_2047.c src/mime/mime_charset.c src/mime/mime_addr.c src/mime/mime_ctype.c src/mime/mime_part.c src/mime/mime_decode.c src/mime/mime_html.c src/mime/mime_url.c src/mime/mime_date.c"
for h in fuzz/fuzz_*.c; do
  name=$(basename "$h" .c); name=${name#fuzz_}
  clang $flags -o "$out/$name" "$h" $lib_src $libs
  mkdir -p "fuzz/corpus-$name"
  echo "fuzz: $name for ${secs}s"
  "$out/$name" -max_total_time="$secs" -artifact_prefix=fuzz/crash- \
    "fuzz/corpus-$name" "fuzz/seeds/$name" > "$out/$name.log" 2>&1 || { tail -n 30 "$out/$name.log"; exit 1; }
  tail -n 1 "$out/$name.log"
done
