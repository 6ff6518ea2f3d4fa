#!/usr/bin/perl
# Kill driver of tests/it/interrupt.rs, run inside the sandbox (perl-base only: no modules
# beyond POSIX). It starts CMD (stdin and stdout /dev/null, stderr on a pipe it owns), SIGKILLs
# CMD's whole process tree at one chosen point, and prints what it did, then "---" and CMD's
# stderr up to the kill.
#
#   interrupt_driver.pl block OFFSET -- CMD...   kill CMD while it is blocked writing byte OFFSET
#                                                of its stderr (exact step boundaries, below)
#   interrupt_driver.pl watch REGEX -- CMD...    kill as soon as a process of CMD's tree has a
#                                                command line matching REGEX (polled every 10 ms)
#
# `block`: telem-deploy prints a step's line on stderr after the step is done and before the
# next step starts. The pipe is shrunk to one page (F_SETPIPE_SZ, 4096 bytes) and pre-filled
# with 4096 - OFFSET NUL bytes, and nobody reads it: CMD's writes append to that page until it
# holds exactly 4096 bytes, i.e. until CMD has written OFFSET bytes; its next write(2) to stderr
# cannot fit and blocks (writes of up to PIPE_BUF bytes are atomic: never split). OFFSET is the
# length of everything the tool prints before step k's line, so the tool blocks right after step
# k is applied and before its line is out and step k+1 is checked. The driver waits until the
# pipe is full and CMD's main thread sleeps in (anon_)pipe_write (/proc/PID/wchan), then freezes the
# tree (SIGSTOP until no new process appears) and SIGKILLs it: the kill lands exactly on the
# boundary, with nothing of step k+1 started. The caller checks the captured stderr (exactly k
# step lines) to confirm the block happened where it meant it to.
#
# INTERRUPT_TOOL_ONLY=1 kills CMD's PID only (as `kill -9 PID` or the OOM killer would); the
# rest of its tree is continued and lives on.
#
# Output (stdout): "result: blocked|matched|exited CODE|timeout", "killed: PIDS", "---", stderr.
use strict;
use warnings;
use POSIX ();

my ($mode, $arg, $sep, @cmd) = @ARGV;
die "usage: $0 block OFFSET|watch REGEX -- CMD...\n"
  unless defined $sep && $sep eq '--' && @cmd && ($mode eq 'block' || $mode eq 'watch');
my $timeout = $ENV{INTERRUPT_TIMEOUT} || 600;
use constant { F_SETPIPE_SZ => 1031, F_GETPIPE_SZ => 1032, FIONREAD => 0x541B };

pipe(my $r, my $w) or die "pipe: $!\n";
my $cap = 0;
if ($mode eq 'block') {
    fcntl($w, F_SETPIPE_SZ, 4096) or die "F_SETPIPE_SZ: $!\n";
    $cap = fcntl($w, F_GETPIPE_SZ, 0) or die "F_GETPIPE_SZ: $!\n";
    $cap += 0;
    die "OFFSET $arg does not fit a pipe of $cap bytes\n" unless $arg =~ /^\d+$/ && $arg < $cap;
    my $pad = "\0" x ($cap - $arg);
    (syswrite($w, $pad) // -1) == length $pad or die "pre-fill: $!\n";
}

my $pid = fork // die "fork: $!\n";
if ($pid == 0) {
    open(STDIN, '<', '/dev/null') or die;
    open(STDOUT, '>', '/dev/null') or die;
    open(STDERR, '>&', $w) or die;
    close $r;
    close $w;
    exec @cmd or die "exec $cmd[0]: $!\n";
}
close $w;

sub slurp {
    open(my $f, '<', $_[0]) or return '';
    local $/;
    my $s = <$f> // '';
    return $s;
}

sub queued {
    my $n = pack('i', 0);
    ioctl($r, FIONREAD, $n) or return -1;
    return unpack('i', $n);
}

# The process tree under $pid (including it), from /proc/*/status PPid.
sub tree {
    my %kids;
    for my $dir (glob '/proc/[0-9]*') {
        my ($p) = $dir =~ m{(\d+)$};
        my ($pp) = slurp("$dir/status") =~ /^PPid:\s+(\d+)/m or next;
        push @{ $kids{$pp} }, $p;
    }
    my @todo = ($pid);
    my @all;
    while (@todo) {
        my $p = shift @todo;
        push @all, $p;
        push @todo, @{ $kids{$p} || [] };
    }
    return @all;
}

my $result;
my $deadline = time + $timeout;
while (1) {
    if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
        $result = 'exited ' . ($? >> 8) . ($? & 127 ? " (signal " . ($? & 127) . ")" : '');
        last;
    }
    if ($mode eq 'block') {
        my $wchan = slurp("/proc/$pid/wchan");
        if ($wchan =~ /pipe_write/ && queued() == $cap) {
            $result = 'blocked';
            last;
        }
    } else {
        for my $p (tree()) {
            next if $p == $pid;
            (my $cmdline = slurp("/proc/$p/cmdline")) =~ tr/\0/ /;
            if ($cmdline =~ /$arg/) {
                $result = "matched $p: $cmdline";
                last;
            }
        }
        last if $result;
    }
    if (time > $deadline) {
        $result = 'timeout';
        last;
    }
    select(undef, undef, undef, 0.01);
}

my @killed;
if ($result !~ /^exited/) {
    # Freeze the tree first (a stopped process cannot fork a child we would miss), then kill.
    my %seen;
    for my $round (1 .. 50) {
        my @new = grep { !$seen{$_}++ } tree();
        last unless @new;
        kill 'STOP', @new;
    }
    @killed = sort { $a <=> $b } keys %seen;
    if ($ENV{INTERRUPT_TOOL_ONLY}) {
        # Kill CMD's PID alone; its descendants (the collector daemon) go on once continued.
        @killed = ($pid);
        kill 'KILL', $pid;
        kill 'CONT', grep { $_ != $pid } keys %seen;
    } else {
        kill 'KILL', @killed;
    }
    waitpid($pid, 0);
}

my $text = '';
my $n = queued();
sysread($r, $text, $n) if $n > 0;
$text =~ s/^\0+//;
print "result: $result\nkilled: @killed\n---\n$text";
exit 0;
