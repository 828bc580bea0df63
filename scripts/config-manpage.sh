#!/bin/sh
# maas-snapshot-backup.yaml(5) from docs/configuration.md, so that the man page and the document
# cannot drift: the table's rows become the keys' entries. Run by debian/rules at build time.
#   scripts/config-manpage.sh docs/configuration.md DATE > maas-snapshot-backup.yaml.5
set -eu
doc=${1:?usage: config-manpage.sh CONFIGURATION.md DATE}
date=${2:?usage: config-manpage.sh CONFIGURATION.md DATE}
cat <<HEAD
.TH MAAS-SNAPSHOT-BACKUP.YAML 5 "$date" "maas-snapshot-backup" "File Formats"
.SH NAME
maas-snapshot-backup.yaml \- configuration of maas-snapshot-backup
.SH SYNOPSIS
.I /etc/maas-snapshot-backup/config.yaml
.SH DESCRIPTION
The configuration file of
.BR maas-snapshot-backup (8)
(\fB\-\-config\fR overrides its path), in YAML. Every key is optional; the defaults suit a
deb-installed MAAS. An unknown key or a bad value is an error (exit 78) naming the key, the line
and what is allowed. The shipped file lists every key, commented out, with its default.
.SH KEYS
HEAD
# Table rows "| key | default | meaning |": the key's entry, its default, then its meaning.
# Markdown to roff: backslashes doubled, `code` bold, [text](link) as its text, a leading dot or
# quote escaped.
awk '
function roff(s) {
  gsub(/\\/, "\\e", s)
  while (match(s, /\[[^]]*\]\([^)]*\)/)) {
    t = substr(s, RSTART + 1); t = substr(t, 1, index(t, "]") - 1)
    s = substr(s, 1, RSTART - 1) t substr(s, RSTART + RLENGTH)
  }
  while (match(s, /`[^`]*`/)) s = substr(s, 1, RSTART - 1) "\\fB" substr(s, RSTART + 1, RLENGTH - 2) "\\fR" substr(s, RSTART + RLENGTH)
  gsub(/-/, "\\-", s)
  gsub(/—/, "\\(em", s); gsub(/→/, "\\(->", s); gsub(/…/, "...", s)
  sub(/^[.'"'"']/, "\\\\\\&&", s)
  return s
}
/^\| `/ {
  n = split($0, f, /[ ]\|[ ]/)
  key = f[1]; sub(/^\| /, "", key)
  def = f[2]; mean = f[3]
  for (i = 4; i <= n; i++) mean = mean " | " f[i]
  sub(/ \|$/, "", mean)
  print ".TP"
  print roff(key)
  print "Default: " roff(def) "."
  print ".br"
  print roff(mean)
}
' "$doc"
cat <<'TAIL'
.SH FILES
.TP
.I /etc/maas-snapshot-backup/config.yaml
this file
.TP
.I /usr/share/doc/maas-snapshot-backup/
the README and the documents on restore, remote copies, benchmarks and the alert rules
.SH SEE ALSO
.BR maas-snapshot-backup (8),
.BR restic (1),
.BR systemd.timer (5)
TAIL
