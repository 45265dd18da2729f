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
lib_src="src/core/buf.c src/core/util.c src/core/log.c src/core/arena.c src/core/linebuf.c src/core/conf_locate.c src/smtp/smtp_parse.c src/smtp/smtp_path.c src/smtp/smtp_data.c src/dir/dir_file_parse.c src/dir/dir_addr.c src/store/uidlist.c src/store/modseq.c src/pop3/pop3_parse.c src/imap/imap_parse.c src/imap/imap_fetch_parse.c src/imap/imap_bodystruct.c src/imap/imap_search_text.c src/imap/imap_utf7.c src/mime/mime_util.c src/mime/mime_header.c src/mime/mime_2047.c src/mime/mime_charset.c src/mime/mime_addr.c src/mime/mime_ctype.c src/mime/mime_part.c src/mime/mime_decode.c src/mime/mime_html.c src/mime/mime_url.c src/mime/mime_date.c"
# fuzz_rules runs the whole Lua layer: it links every library module.
all_src="$(ls src/core/*.c src/login/*.c src/smtp/*.c src/dir/*.c src/store/*.c src/mime/*.c src/lua/*.c)"
all_flags="-DMP_SRCDIR=\"$PWD\" -DMP_DATADIR=\"/usr/local/share/moonpost\" $(pkg-config --cflags libmariadb libpcre2-8)"
all_libs="$(pkg-config --libs luajit openssl libmariadb libpcre2-8 libcrypt libargon2 zlib) -lev -lm -lpthread"
for h in fuzz/fuzz_*.c; do
  name=$(basename "$h" .c); name=${name#fuzz_}
  seeds="fuzz/seeds/$name" opts=""
  if [ "$name" = rules ]; then
    clang $flags $all_flags -o "$out/$name" "$h" $all_src $all_libs
    seeds="$seeds t/corpus t/lua"
    # The set keeps caches (compiled regexes) and Lua frees by GC, later
    # than one input: per-input leak checks would only see those.
    opts="-detect_leaks=0"
  else
    clang $flags -o "$out/$name" "$h" $lib_src $libs
  fi
  # the message corpus is a good start for the IMAP message data
  if [ "$name" = imap_body ]; then seeds="$seeds t/corpus"; fi
  mkdir -p "fuzz/corpus-$name"
  echo "fuzz: $name for ${secs}s"
  # shellcheck disable=SC2086
  "$out/$name" $opts -max_total_time="$secs" -artifact_prefix=fuzz/crash- \
    "fuzz/corpus-$name" $seeds > "$out/$name.log" 2>&1 || { tail -n 30 "$out/$name.log"; exit 1; }
  tail -n 1 "$out/$name.log"
done
