package CostCap::Test::TLS;

# Certificates made with openssl at test time (EC P-256, valid two days),
# in a directory under the harness tmp_dir:
#
#   ca.crt / ca.key                 the CA every server and client trusts
#   server.crt / server.key         signed by the CA; CN localhost, SAN
#                                   DNS:localhost, DNS:redis.test,
#                                   IP:127.0.0.1, IP:127.0.0.2,
#                                   IP:127.0.0.3 (serverAuth and
#                                   clientAuth: Redis uses it for its own
#                                   replication and cluster bus links too)
#   wrong_name.crt / .key           signed by the CA; CN and SAN
#                                   wrong.example only
#   client.crt / client.key         signed by the CA, CN cost-cap-client
#                                   (mutual TLS)
#   other_ca.crt / other_ca.key     a second CA that signed none of the
#                                   above (the wrong-CA tests)
#   other_client.crt / .key         a client certificate signed by the
#                                   other CA (refused by mutual TLS)
#
#   my $tls = CostCap::Test::TLS->new(%o);  names => [extra SAN DNS names]
#   CostCap::Test::TLS->shared              one set per test process
#   $tls->dir, $tls->file('client.crt'), $tls->ca, $tls->other_ca
#   $tls->cert, $tls->key                   server.crt, server.key
#   $tls->client_opts(%over)                tls => {...} for a
#                                           CostCap::Test::Client: the CA,
#                                           the client certificate, name
#                                           localhost
#   $tls->cli_args                          redis-cli --tls arguments

use strict;
use warnings;

my $SHARED;
my $SEQ = 0;

sub shared { $SHARED ||= $_[0]->new }

sub new {
    my ($class, %o) = @_;
    my $dir = CostCap::Test::tmp_dir() . '/tls-' . ++$SEQ;
    mkdir $dir or die "$dir: $!";
    my $self = bless { dir => $dir, names => $o{names} // [] }, $class;
    $self->_make;
    return $self;
}

sub dir { $_[0]{dir} }
sub file { "$_[0]{dir}/$_[1]" }
sub ca { $_[0]->file('ca.crt') }
sub other_ca { $_[0]->file('other_ca.crt') }
sub cert { $_[0]->file('server.crt') }
sub key { $_[0]->file('server.key') }

sub client_opts {
    my ($self, %over) = @_;
    return { ca => $self->ca, cert => $self->file('client.crt'),
             key => $self->file('client.key'), name => 'localhost',
             %over };
}

sub cli_args {
    my $self = shift;
    return ('--tls', '--cacert', $self->ca,
            '--cert', $self->file('client.crt'),
            '--key', $self->file('client.key'));
}

sub _openssl {
    my ($self, @args) = @_;
    my ($st, $out) = CostCap::Test::Node::run_cmd(20,
        "$self->{dir}/openssl.log", 'openssl', @args);
    die "openssl @args: $out\n" if $st != 0;
}

# a self-signed CA
sub _ca {
    my ($self, $name, $cn) = @_;
    my $d = $self->{dir};
    $self->_openssl('req', '-x509', '-config', "$d/req.cnf",
        '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-keyout', "$d/$name.key", '-out', "$d/$name.crt",
        '-days', 2, '-subj', "/CN=$cn",
        '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

# a leaf certificate signed by CA, with the extensions of section EXT
sub _leaf {
    my ($self, $name, $cn, $ca, $ext) = @_;
    my $d = $self->{dir};
    $self->_openssl('req', '-new', '-config', "$d/req.cnf",
        '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-keyout', "$d/$name.key", '-out', "$d/$name.csr",
        '-subj', "/CN=$cn");
    $self->_openssl('x509', '-req', '-in', "$d/$name.csr",
        '-CA', "$d/$ca.crt", '-CAkey', "$d/$ca.key", '-CAcreateserial',
        '-out', "$d/$name.crt", '-days', 2,
        '-extfile', "$d/ext.cnf", '-extensions', $ext);
    chmod 0644, "$d/$name.key";
}

sub _make {
    my $self = shift;
    my $d = $self->{dir};
    my $san = join ',', map({ "DNS:$_" } 'localhost', 'redis.test',
                                         @{$self->{names}}),
                        map { "IP:127.0.0.$_" } 1 .. 3;
    CostCap::Test::_spit("$d/req.cnf",
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n");
    CostCap::Test::_spit("$d/ext.cnf", <<"END");
[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $san

[wrong]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:wrong.example

[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
END
    $self->_ca('ca', 'cost-cap test CA');
    $self->_ca('other_ca', 'cost-cap other CA');
    $self->_leaf('server', 'localhost', 'ca', 'server');
    $self->_leaf('wrong_name', 'wrong.example', 'ca', 'wrong');
    $self->_leaf('client', 'cost-cap-client', 'ca', 'client');
    $self->_leaf('other_client', 'cost-cap-client', 'other_ca', 'client');
}


1;
