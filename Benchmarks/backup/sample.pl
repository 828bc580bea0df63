#!/usr/bin/perl
# Watches one maas-snapshot-backup run from outside (its --json output has no archive timings):
# every INTERVAL ms it notes whether DEST/*.partial exists, whether the program has a file of the
# frozen tree open while the archive is written (a regular file under /var/lib/maas/, /etc/maas/
# or /staging/), and whether a pg_dump or
# pg_dumpall child runs. When WATCH_PID exits it prints first/last times (epoch seconds) as
# shell assignments.
# Usage: sample.pl WATCH_PID DEST INTERVAL_MS
use strict;
use warnings;
use Time::HiRes qw(time sleep);
my ($watch, $dest, $ms) = @ARGV;
die "usage: sample.pl WATCH_PID DEST INTERVAL_MS\n" unless defined $ms;
my %first; my %last;
sub mark { my ($k, $t) = @_; $first{$k} //= $t; $last{$k} = $t; }
sub children {
    my ($pid) = @_;
    my @kids;
    for my $task (glob "/proc/$pid/task/*") {
        open(my $f, '<', "$task/children") or next;
        push @kids, split ' ', (<$f> // '');
    }
    return @kids;
}
sub comm { my ($pid) = @_; open(my $f, '<', "/proc/$pid/comm") or return ''; my $c = <$f> // ''; chomp $c; $c }
sub alive {   # a zombie (exited, not yet reaped) counts as gone
    open(my $f, '<', "/proc/$watch/stat") or return 0;
    my $st = <$f> // '';
    return $st !~ /^\d+ \(.*\) Z /;
}
my $samples = 0;
while (alive()) {
    my $t = time;
    $samples++;
    my $partial = glob("$dest/*.partial") ? 1 : 0;
    mark('partial', $t) if $partial;
    # The program: the watched pid itself, or its child (when WATCH_PID is /usr/bin/time).
    my @pids = ($watch, children($watch));
    my ($tree, $dump) = (0, 0);
    for my $pid (@pids) {
        if (opendir(my $d, "/proc/$pid/fd")) {
            for my $fd (readdir $d) {
                next if $fd =~ /^\./;
                my $l = readlink("/proc/$pid/fd/$fd") // next;
                next if $l =~ /\.partial$|\.spool$/;
                $tree = 1 if $partial && $l =~ m{/var/lib/maas/|/etc/maas/|/staging/} && -f $l;
            }
            closedir $d;
        }
        my @queue = children($pid);
        my $depth = 0;
        while (@queue && $depth++ < 3) {
            my @next;
            for my $k (@queue) { $dump = 1 if comm($k) =~ /^pg_dump/; push @next, children($k); }
            @queue = @next;
        }
    }
    mark('tree', $t) if $tree;
    mark('dump', $t) if $dump;
    sleep($ms / 1000);
}
for my $k (qw(partial tree dump)) {
    printf "s_%s_first=%.3f\ns_%s_last=%.3f\n", $k, $first{$k} // 0, $k, $last{$k} // 0;
}
print "s_samples=$samples\n";
