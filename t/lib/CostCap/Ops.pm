package CostCap::Ops;

# The Grafana dashboard and the Prometheus rules of ops/, read as data, and
# the PromQL in them checked against a real scrape of cost_cap_metrics:
#
#   my $scrape = CostCap::Ops::parse_scrape($text);
#   my @q = (CostCap::Ops::dashboard_queries($file),
#            CostCap::Ops::rule_queries($file));
#   my @problems = CostCap::Ops::check_expr($scrape, $expr);
#
# The check is generic: any identifier starting with cost_cap_ outside
# strings and label lists is a metric name, which must be a sample name of
# the scrape or a name its # TYPE lines declare (a histogram F: F_bucket,
# F_sum, F_count; a summary F: F, F_sum, F_count; else F itself); label
# matchers on it must name labels its samples carry (or the target labels
# Prometheus adds), and literal values must be values they carry.

use strict;
use warnings;

use CPAN::Meta::YAML ();
use JSON::PP ();

# labels Prometheus adds at scrape time, absent from the module's text
our @TARGET_LABELS = qw(job instance);

my $IDENT = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
my $STRING = qr/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/;


sub _slurp {
    my $file = shift;
    open my $fh, '<', $file or die "$file: $!\n";
    local $/;
    my $t = <$fh>;
    close $fh;
    return $t;
}


# { samples => { name => [ {label => value}, ... ] },
#   types => { family => type }, bad => [lines not understood] }
sub parse_scrape {
    my $text = shift;
    my (%samples, %types, @bad);

    for my $line (split /\n/, $text) {
        next if $line =~ /^\s*$/;
        if ($line =~ /^# TYPE ($IDENT) (\w+)$/) {
            $types{$1} = $2;
            next;
        }
        next if $line =~ /^#/;
        if ($line =~ /^($IDENT)(?:\{(.*)\})?\s+\S+(?:\s+\d+)?$/) {
            my ($name, $labels) = ($1, $2 // '');
            my %l;
            while ($labels =~ /\G\s*($IDENT)="((?:[^"\\]|\\.)*)"\s*,?/gc) {
                (my $v = $2) =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ge;
                $l{$1} = $v;
            }
            push @bad, $line if (pos($labels) // 0) != length $labels;
            push @{ $samples{$name} }, \%l;
            next;
        }
        push @bad, $line;
    }

    return { samples => \%samples, types => \%types, bad => \@bad };
}


# every name a query may use, by the scrape: name => family type
sub exposed_names {
    my $s = shift;
    my %n;

    for my $f (keys %{ $s->{types} }) {
        my $t = $s->{types}{$f};
        if ($t eq 'histogram') {
            $n{"${f}_$_"} = $t for qw(bucket sum count);
        } elsif ($t eq 'summary') {
            $n{$f} = $t;
            $n{"${f}_$_"} = $t for qw(sum count);
        } else {
            $n{$f} = $t;
        }
    }
    $n{$_} //= 'untyped' for keys %{ $s->{samples} };

    return \%n;
}


# the dashboard's queries: ([where, expr], ...), panels inside rows too,
# and the query variables' label_values()
sub dashboard_queries {
    my $d = ref $_[0] ? $_[0] : JSON::PP->new->decode(_slurp($_[0]));
    my @q;
    my $walk;
    $walk = sub {
        for my $p (@_) {
            for my $t (@{ $p->{targets} // [] }) {
                push @q, ["panel \"$p->{title}\" $t->{refId}", $t->{expr}]
                    if defined $t->{expr};
            }
            $walk->(@{ $p->{panels} // [] });
        }
    };
    $walk->(@{ $d->{panels} // [] });

    for my $v (@{ $d->{templating}{list} // [] }) {
        next unless ($v->{type} // '') eq 'query';
        my $q = ref $v->{query} ? $v->{query}{query} : $v->{query};
        push @q, ["variable \$$v->{name}", $q];
    }

    return @q;
}


# the rules file's expressions: ([where, expr], ...)
sub rule_queries {
    my $file = shift;
    my $y = CPAN::Meta::YAML->read_string(_slurp($file))
        or die "$file: " . CPAN::Meta::YAML->errstr . "\n";
    my @q;
    for my $g (@{ $y->[0]{groups} // [] }) {
        for my $r (@{ $g->{rules} // [] }) {
            my $name = $r->{alert} // $r->{record} // '?';
            push @q, ["rule $g->{name}/$name", $r->{expr}];
        }
    }
    return @q;
}


# the PromQL with strings, label lists and grouping clauses blanked out;
# what is left names metrics and functions only
sub _skeleton {
    my $e = shift;
    $e =~ s/$STRING/""/g;
    $e =~ s/\{[^{}]*\}/{}/g;
    $e =~ s/\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)/$1()/g;
    return $e;
}


# metric names starting with cost_cap_ that an expression reads
sub metric_names {
    my $e = shift;
    my %n;
    $n{$1} = 1 while $e =~ /__name__\s*=\s*"(cost_cap_[^"]*)"/g;
    my $s = _skeleton($e);
    $n{$1} = 1 while $s =~ /(?<![a-zA-Z0-9_:.\$])(cost_cap_[a-zA-Z0-9_:]*)/g;
    return sort keys %n;
}


# selectors of cost_cap_ metrics: ([name, [[label, op, value], ...]], ...)
sub selectors {
    my $e = shift;
    my @s;
    while ($e =~ /(?<![a-zA-Z0-9_:])(cost_cap_[a-zA-Z0-9_:]*)\s*\{([^{}]*)\}/g) {
        my ($name, $body) = ($1, $2);
        my @m;
        while ($body =~ /($IDENT)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g) {
            push @m, [$1, $2, $3];
        }
        push @s, [$name, \@m];
    }
    return @s;
}


# label names of by/without/on/ignoring/group_* clauses
sub grouping_labels {
    my $e = shift;
    $e =~ s/$STRING/""/g;
    my %l;
    while ($e =~ /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)/g) {
        $l{$_} = 1 for grep { length } split /[\s,]+/, $1;
    }
    # label_values(metric, label) of Grafana variables
    $l{$1} = 1 while $e =~ /\blabel_values\s*\(.*,\s*($IDENT)\s*\)/g;
    return sort keys %l;
}


# the label names and values of a name's samples (a histogram's buckets
# carry le, its _sum and _count do not)
sub _labels_of {
    my ($s, $name) = @_;
    my %l;
    for my $sample (@{ $s->{samples}{$name} // [] }) {
        $l{$_}{ $sample->{$_} } = 1 for keys %$sample;
    }
    return \%l;
}


# problems with one expression against the scrape (empty: none)
sub check_expr {
    my ($s, $expr) = @_;
    my @p;
    my $exposed = exposed_names($s);
    my @names = metric_names($expr);
    my %target = map { $_ => 1 } @TARGET_LABELS;

    for my $n (@names) {
        next if $exposed->{$n};
        my $why = "$n is not exposed by the scrape";
        if (($s->{types}{$n} // '') eq 'histogram') {
            $why .= " ($n is a histogram: ${n}_bucket, ${n}_sum, ${n}_count)";
        } elsif ($n =~ /^(.*)_(bucket|sum|count)$/ && $s->{types}{$1}) {
            $why .= " ($1 is a $s->{types}{$1})";
        }
        push @p, $why;
    }

    for my $sel (selectors($expr)) {
        my ($n, $matchers) = @$sel;
        next unless $exposed->{$n};
        my $have = _labels_of($s, $n);
        if (!@{ $s->{samples}{$n} // [] }) {
            push @p, "$n: no samples in the scrape to check its labels against"
                if grep { !$target{ $_->[0] } } @$matchers;
            next;
        }
        for my $m (@$matchers) {
            my ($l, $op, $v) = @$m;
            next if $target{$l};
            if (!$have->{$l}) {
                push @p, "$n has no label $l";
                next;
            }
            next if $v =~ /\$/ || $op =~ /^!/;
            my @want = $op eq '=' ? ($v)
                     : $v =~ /^[a-zA-Z0-9_:.+-]+(?:\|[a-zA-Z0-9_:.+-]+)*$/
                       ? split(/\|/, $v) : ();
            for my $w (@want) {
                push @p, "$n\{$l=\"$w\"} has no sample"
                    unless $have->{$l}{$w};
            }
        }
    }

    # grouping labels: each carried by one of the metrics read (or a
    # target label)
    my %carried = (%target, map { %{ _labels_of($s, $_) } } @names);
    for my $l (grouping_labels($expr)) {
        push @p, "grouping by $l, which none of "
               . join(', ', @names) . " carries"
            unless $carried{$l};
    }

    push @p, 'reads no cost_cap_ metric' unless @names;

    return @p;
}

1;
