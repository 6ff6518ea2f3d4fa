#!/usr/bin/perl
# Load generator of tests/it/e2e_restarts.rs, run inside the sandbox (perl-base only), and of
# tests/it/e2e_inventory.rs's load scenario (from the controller, to the balancer). CLIENTS
# processes each keep one HTTP/1.1 keep-alive connection to HOST:80 (nginx; HOST defaults to
# 127.0.0.1) and post the record in FILE again and again, each time with a new event_id (32 hex
# digits, same length, so Content-Length holds), until STOP exists. A connection the server says it closes
# (`Connection: close`) is reopened; anything else that ends a request without an answer is a
# socket error; a 503 without Retry-After counts as other. Once every client is connected it
# creates READY. At the end it prints every error with its time (seconds since boot) on stderr,
# then one line: "2xx=N 503=N other=N errors=N resent=N first_error=...".
# With E2E_LOAD_RESEND=1 a request that ends without an answer (a socket error) is sent again,
# the same record with the same event id, on a new connection (event ids make a resend
# idempotent: a record the server stored before the error is not stored twice); each is
# counted in resent.
#
#   e2e_load.pl CLIENTS FILE PREFIX READY STOP [HOST]
#
# Its clients' tallies go to a directory in TMPDIR (default /tmp).
use strict;
use warnings;
use IO::Socket::INET;
use POSIX ();

my ($clients, $file, $prefix, $ready, $stop, $host) = @ARGV;
$host //= '127.0.0.1';
open(my $fh, '<', $file) or die "$file: $!";
my $template = do { local $/; <$fh> };
close $fh;
$template =~ s/^Connection: close\r\n//mi;
$template =~ /"event_id":"([0-9a-f]{32})"/ or die "no event_id in $file";

my $dir = ($ENV{TMPDIR} // "/tmp") . "/e2e-load.$$";
mkdir $dir or die "$dir: $!";
my @pids;
for my $c (1 .. $clients) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) { client($c); POSIX::_exit(0); }
    push @pids, $pid;
}
# READY once each client has had its first answer.
while (1) {
    opendir(my $d, $dir) or die;
    my $n = grep { /^up\./ } readdir($d);
    closedir $d;
    last if $n >= $clients;
    select(undef, undef, undef, 0.05);
}
open(my $r, '>', $ready) or die; close $r;
waitpid($_, 0) for @pids;
my %sum = ('2xx' => 0, '503' => 0, other => 0, errors => 0, resent => 0);
my $first = '';
for my $c (1 .. $clients) {
    open(my $in, '<', "$dir/result.$c") or die "client $c left no result";
    my $line = <$in>;
    close $in;
    chomp $line;
    my ($ok, $u, $o, $e, $rs, $f) = split /\t/, $line, 6;
    $sum{'2xx'} += $ok; $sum{'503'} += $u; $sum{other} += $o; $sum{errors} += $e;
    $sum{resent} += $rs;
    $first ||= $f // '';
}
# Every error with the time it happened (seconds since boot, as /proc/uptime), oldest first.
my @notes;
for my $c (1 .. $clients) {
    open(my $in, '<', "$dir/errors.$c") or next;
    push @notes, <$in>;
    close $in;
}
print STDERR map { $_->[1] } sort { $a->[0] <=> $b->[0] } map { [(split " ", $_)[0], $_] } @notes;
print "2xx=$sum{'2xx'} 503=$sum{'503'} other=$sum{other} errors=$sum{errors} resent=$sum{resent} first_error=$first\n";

sub client {
    my ($c) = @_;
    my ($ok, $unavailable, $other, $errors, $resent, $first, $n, $sock) = (0, 0, 0, 0, 0, '', 0);
    my $up = 0;
    my $resend = ($ENV{E2E_LOAD_RESEND} // '') eq '1';
    my $again;
    until (-e $stop) {
        $sock //= IO::Socket::INET->new(PeerAddr => $host, PeerPort => 80, Proto => 'tcp');
        if (!$sock) { $errors++; $first ||= "connect: $!"; note_error($c, "connect: $!"); next; }
        my $req = $again;
        if (defined $req) { $resent++; undef $again; }
        else {
            my $id = sprintf('%s%08x%08x', substr($prefix, 0, 16), $c, $n++);
            ($req = $template) =~ s/"event_id":"[0-9a-f]{32}"/"event_id":"$id"/;
        }
        my ($status, $close, $err, $retry_after) = exchange($sock, $req);
        if (defined $err) {
            $errors++; $first ||= "client $c request $n: $err";
            note_error($c, "request $n: $err");
            $again = $req if $resend;
            close $sock; undef $sock; next;
        }
        if ($status >= 200 && $status < 300) { $ok++ }
        elsif ($status == 503 && $retry_after) { $unavailable++ }
        else {
            my $what = $status == 503 ? "HTTP 503 without Retry-After" : "HTTP $status";
            $other++; $first ||= "client $c: $what"; note_error($c, $what);
        }
        if (!$up) { open(my $u, '>', "$dir/up.$c"); close $u; $up = 1; }
        if ($close) { close $sock; undef $sock; }
    }
    open(my $out, '>', "$dir/result.$c") or die;
    print $out join("\t", $ok, $unavailable, $other, $errors, $resent, $first), "\n";
    close $out;
}

# Appends "UPTIME client C: WHAT" to the client's error list.
sub note_error {
    my ($c, $what) = @_;
    open(my $u, '<', '/proc/uptime') or return;
    my ($now) = split ' ', scalar <$u>;
    close $u;
    open(my $out, '>>', "$dir/errors.$c") or return;
    print $out "$now client $c: $what\n";
    close $out;
}

# One request and its answer: (status, server closes, undef, has Retry-After) or
# (undef, undef, error).
sub exchange {
    my ($sock, $req) = @_;
    my $sent = syswrite($sock, $req);
    return (undef, undef, "write: $!") unless defined $sent && $sent == length $req;
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) {
        my $n = sysread($sock, $buf, 65536, length $buf);
        return (undef, undef, defined $n ? 'closed before an answer' : "read: $!") unless $n;
    }
    my ($head, $rest) = split /\r\n\r\n/, $buf, 2;
    my ($status) = $head =~ m{^HTTP/1\.\d (\d{3})} or return (undef, undef, "bad answer: $head");
    my ($len) = $head =~ /^content-length:\s*(\d+)/mi;
    $len //= 0;
    while (length($rest) < $len) {
        my $n = sysread($sock, $rest, 65536, length $rest);
        return (undef, undef, 'closed in the body') unless $n;
    }
    my $close = $head =~ /^connection:\s*close/mi ? 1 : 0;
    my $retry_after = $head =~ /^retry-after:\s*\d+/mi ? 1 : 0;
    return ($status, $close, undef, $retry_after);
}
