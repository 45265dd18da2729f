#!/usr/bin/env python3
# The private MariaDB helper works and conf/schema.sql is the ISPmail schema:
# it loads, holds a domain/user/alias, enforces unique emails, and deleting a
# domain cascades to its users and aliases (as ISPmail admins rely on).
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))

import mariadb  # noqa: E402
import tap  # noqa: E402

SCHEMA = os.path.join(HERE, "..", "conf", "schema.sql")
BLF = "{BLF-CRYPT}$2y$05$m.GdQNMyUFNG0vPsaXxSB.0ZQqZhe1e9Un841oBcWi6U6HRF2Kmky"

if not mariadb.available():
    tap.skip_all("MariaDB server/client not installed")

with tap.section("private server"):
    with mariadb.MariaDB() as db:
        with tap.section("schema"):
            tap.ok(db.running(), "private mariadbd is running")
            tap.is_(db.sql("SELECT 1"), [["1"]], "root can query over the socket")
            db.create_db("mailserver")
            db.load_file(SCHEMA, "mailserver")
            tables = [r[0] for r in db.sql("SHOW TABLES", db="mailserver")]
            tap.is_(sorted(tables), ["virtual_aliases", "virtual_domains", "virtual_users"],
                    "schema creates the three ISPmail tables")
            db.load_file(SCHEMA, "mailserver")
            tap.ok(True, "schema loads twice (CREATE TABLE IF NOT EXISTS)")
            engines = db.sql("SELECT table_name, engine FROM information_schema.tables "
                             "WHERE table_schema='mailserver' ORDER BY table_name")
            tap.is_([e for _, e in engines], ["InnoDB"] * 3, "all tables are InnoDB")
            cols = db.sql("SELECT column_name, column_type, column_default "
                          "FROM information_schema.columns WHERE table_schema='mailserver' "
                          "AND table_name='virtual_users' ORDER BY ordinal_position")
            tap.is_([c[0] for c in cols], ["id", "domain_id", "password", "email", "quota"],
                    "virtual_users columns")
            tap.is_(cols[2][1], "varchar(150)", "password is varchar(150)")
            tap.is_(cols[3][1], "varchar(100)", "email is varchar(100)")
            tap.is_(cols[4][2], "0", "quota defaults to 0")

        with tap.section("data"):
            db.sql("""
                INSERT INTO virtual_domains (name) VALUES ('example.org');
                INSERT INTO virtual_users (domain_id, email, password)
                  SELECT id, 'john@example.org', '%s' FROM virtual_domains
                  WHERE name='example.org';
                INSERT INTO virtual_aliases (domain_id, source, destination)
                  SELECT id, 'jack@example.org', 'john@example.org' FROM virtual_domains
                  WHERE name='example.org';
                """ % BLF, db="mailserver")
            # The exact lookups Postfix/Dovecot do in the ISPmail guide.
            tap.is_(db.sql("SELECT 1 FROM virtual_domains WHERE name='example.org'",
                           db="mailserver"), [["1"]], "domain lookup")
            tap.is_(db.sql("SELECT email, password, quota FROM virtual_users "
                           "WHERE email='john@example.org'", db="mailserver"),
                    [["john@example.org", BLF, "0"]], "user lookup returns password, quota 0")
            tap.is_(db.sql("SELECT destination FROM virtual_aliases "
                           "WHERE source='jack@example.org'", db="mailserver"),
                    [["john@example.org"]], "alias lookup")
            try:
                db.sql("INSERT INTO virtual_users (domain_id, email, password) "
                       "SELECT id, 'john@example.org', 'x' FROM virtual_domains",
                       db="mailserver")
                tap.ok(False, "duplicate email is rejected")
            except mariadb.MariaDBError as e:
                tap.like(str(e), r"Duplicate entry", "duplicate email is rejected")
            try:
                db.sql("INSERT INTO virtual_users (domain_id, email, password) "
                       "VALUES (9999, 'x@nowhere.example', 'x')", db="mailserver")
                tap.ok(False, "user in a missing domain is rejected (FK)")
            except mariadb.MariaDBError as e:
                tap.like(str(e), r"foreign key constraint fails",
                         "user in a missing domain is rejected (FK)")

        with tap.section("cascade"):
            db.sql("DELETE FROM virtual_domains WHERE name='example.org'", db="mailserver")
            tap.is_(db.sql("SELECT COUNT(*) FROM virtual_users", db="mailserver"), [["0"]],
                    "deleting the domain cascades to its users")
            tap.is_(db.sql("SELECT COUNT(*) FROM virtual_aliases", db="mailserver"), [["0"]],
                    "deleting the domain cascades to its aliases")

        with tap.section("restart"):
            # Outage/recovery tests later rely on the datadir surviving a restart.
            db.sql("INSERT INTO virtual_domains (name) VALUES ('kept.example')",
                   db="mailserver")
            tap.is_(db.stop(), 0, "clean shutdown exits 0")
            tap.ok(not db.running(), "server is down after stop()")
            db.start()
            tap.is_(db.sql("SELECT name FROM virtual_domains", db="mailserver"),
                    [["kept.example"]], "data survives stop()/start()")
            db.sql("CREATE USER 'mailserver'@'127.0.0.1' IDENTIFIED BY 'pw';"
                   "GRANT SELECT ON mailserver.* TO 'mailserver'@'127.0.0.1';")
            tap.is_(db.sql("SELECT name FROM virtual_domains", db="mailserver",
                           user="mailserver", password="pw", tcp=True),
                    [["kept.example"]], "a real SQL user can log in over TCP")
            tap.is_(db.stop(), 0, "final shutdown exits 0")

tap.done()
