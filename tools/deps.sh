#!/bin/sh
# Installs the Debian 12 packages a make target needs, only when missing.
# usage: tools/deps.sh build|test|fuzz|bench ...   Idempotent; silent when all are there.
set -e
build="gcc make pkg-config libluajit-5.1-dev libssl-dev libmariadb-dev libev-dev libpcre2-dev libcrypt-dev libargon2-dev zlib1g-dev openssl"
test="perl python3 openssl mariadb-server mariadb-client swaks libnet-ssleay-perl libio-socket-ssl-perl dovecot-core postfix dovecot-pop3d fetchmail getmail6 mutt isync dovecot-imapd"
# t/90-roundcube.t: Debian's Roundcube (served by PHP's built-in server from a
# private tree, its own state in SQLite, the password plugin's SQL driver over
# PDO MySQL) driven by headless Chromium through playwright-core from npm
# (installed at test time into build/npm/node_modules, git-ignored as build/).
test="$test roundcube roundcube-core roundcube-sqlite3 roundcube-plugins php-cli php-sqlite3 php-mysql php-intl php-mbstring sqlite3 chromium fonts-dejavu-core nodejs"
fuzz="clang libclang-rt-14-dev"
# The anchor stack (../shared/anchors/install-deps.sh) plus smtp-source.
bench="postfix postfix-mysql dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-mysql dovecot-sieve rspamd redis-server"
need=""
for group in "$@"; do
  eval "pkgs=\$$group"
  for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  # npm comes with NodeSource's nodejs; Debian's own nodejs needs the npm package.
  if [ "$group" = test ] && ! command -v npm >/dev/null 2>&1; then
    case "$need" in *" nodejs"*) ;; *) need="$need npm" ;; esac
  fi
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "moonpost: missing Debian packages:$need" >&2
  echo "moonpost: run as root, or: sudo apt-get install$need" >&2
  exit 1
fi
echo "moonpost: installing$need" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages must not start system services (MariaDB, Postfix) on install:
# tests start their own private instances.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# Roundcube's dbconfig-common must not prompt or make a database: the test
# gives Roundcube its own SQLite file in a temp dir.
echo "roundcube-core roundcube/dbconfig-install boolean false" | debconf-set-selections
apt-get update -q >/dev/null || apt-get update
apt-get install -y -q --no-install-recommends $need >/dev/null
# Debian's nodejs comes without npm: bring it in when it is still missing.
if ! command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
  case " $* " in *" test "*) apt-get install -y -q --no-install-recommends npm >/dev/null ;; esac
fi
