#!/usr/bin/perl
# Half-compressible files standing in for MAAS image-storage blobs: alternating 64 KiB runs of
# random bytes (/dev/urandom) and word salad (slices of a 4 MiB pool made with a fixed seed), the
# same mix as Benchmarks/compress. gzip -6 shrinks it to about half.
# Usage: gen-files.pl DIR TOTAL_BYTES FILE_BYTES
use strict;
use warnings;
my ($dir, $total, $fsize) = @ARGV;
die "usage: gen-files.pl DIR TOTAL_BYTES FILE_BYTES\n" unless defined $fsize && $fsize > 0;
my @words = map { "$_ " } qw(maas region rack controller boot resource postgres snapshot btrfs
    subvolume machine interface vlan subnet dhcp dns 1 42 2024-06-01 ubuntu jammy commissioning = );
push @words, "\n ", "\t ";
srand(2024);
my $pool = '';
$pool .= $words[int(rand(@words))] while length($pool) < 4 << 20;
my $plen = length($pool);
my $run = 64 * 1024;
open(my $rnd, '<:raw', '/dev/urandom') or die "cannot open /dev/urandom: $!\n";
my ($written, $n) = (0, 0);
while ($written < $total) {
    my $size = $total - $written < $fsize ? $total - $written : $fsize;
    my $name = sprintf('%s/%064x', $dir, 0x5eed0000 + $n++);   # sha256-like names, as MAAS uses
    open(my $out, '>:raw', $name) or die "cannot create $name: $!\n";
    my ($left, $i) = ($size, 0);
    while ($left > 0) {
        my $len = $left < $run ? $left : $run;
        my $buf;
        if ($i++ % 2 == 0) {
            my $got = read($rnd, $buf, $len);
            die "short read from /dev/urandom\n" unless defined $got && $got == $len;
        } else {
            $buf = substr($pool, int(rand($plen - $len)), $len);
        }
        print $out $buf or die "cannot write $name: $!\n";
        $left -= $len;
    }
    close($out) or die "cannot write $name: $!\n";
    $written += $size;
}
print "$n\n";
