# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_telem_deploy_global_optspecs
    string join \n a/action= d/distro= H/host= r/repo= s/source= t/type= u/purge h/help dry-run format= y/yes db-password-file= db-password-stdin recipes= templates= detailed-exitcode no-backup collector-bin= ui-auth= tls-cert= tls-key= tls-self-signed tls-only ui-password-file= webapp pip-index-url= webapp-requirements= service-manager= target= targets= ssh-option= inventory= limit= serial= parallel= v/verbose color= V/version
end

function __fish_telem_deploy_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_telem_deploy_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_telem_deploy_using_subcommand
    set -l cmd (__fish_telem_deploy_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -s a -l action -d 'Action to perform' -r -f -a "deploy\t''
install\t''
migrate\t''
resetdb\t''
restart\t''
uninstall\t''
promote\t'An inventory\'s standby becomes the primary; the old primary is fenced'"
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -s d -l distro -d 'Target distribution [default: detected from /etc/os-release, else ubuntu]' -r -f -a "clr\t''
ubuntu\t''
centos\t''
debian\t''"
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -s H -l host -d 'Domain name nginx serves (also used for the health check\'s Host header)' -r
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -s r -l repo -d 'Repository of the optional legacy web UI snapshot' -r
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -s s -l source -d 'Branch, tag or commit id (git) or tarball path (tarball) of the legacy web UI snapshot' -r
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -s t -l type -d 'Kind of snapshot given by -s' -r -f -a "git\t''
tarball\t''"
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l format -d 'Output format; with json, stdout holds exactly one JSON document' -r -f -a "human\t''
json\t''"
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l db-password-file -d 'Read the database password from FILE (first line)' -r -F
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l recipes -d 'Use recipes from DIR instead of the built-in ones (DIR/<distro>.yaml)' -r -F
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l templates -d 'Use templates from DIR instead of the built-in ones' -r -F
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l collector-bin -d 'Install this telem-collector binary instead of the one bundled next to telem-deploy' -r -F
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l ui-auth -d 'Require HTTP basic auth as USER for the web UI, /api/ and /metrics (never for the collector paths); the password comes from --ui-password-file, TELEM_UI_PASSWORD or a prompt' -r
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l tls-cert -d 'Serve HTTPS with this certificate (PEM; a chain may follow it), installed for nginx (0644); refused when expired, not yet valid, or not matching --tls-key' -r -F
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l tls-key -d 'The private key of --tls-cert (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC; no passphrase), installed root-only (0600) and never shown' -r -F
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l ui-password-file -d 'Read the web UI password (for --ui-auth) from FILE (first line)' -r -F
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l pip-index-url -d 'pip\'s index for the legacy web UI\'s requirements (e.g. a local mirror or file:///srv/pypi/simple on an offline site) [default: the recipe\'s, else PyPI]' -r
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l webapp-requirements -d 'Requirements file for the legacy web UI [default: the snapshot\'s own telemetryui/requirements.txt, else the recipe\'s, else telem-deploy\'s pins for the snapshot\'s layout]' -r -F
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l service-manager -d 'Service manager: systemd, or direct (the tool runs the daemons itself) [default: auto, systemd when it is PID 1]' -r -f -a "auto\t''
systemd\t''
direct\t''"
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l target -d 'Provision this machine over SSH instead of the local one: `[USER@]HOST[:PORT]`, an IPv6 address in brackets; repeatable (several machines in one run). The login user must be root. -H keeps its meaning (the domain nginx serves)' -r
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l targets -d 'Read more targets from FILE, one per line (`#` starts a comment)' -r -F
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l ssh-option -d 'Pass an option to ssh, as `ssh -o OPT` (e.g. `ProxyJump=bastion`); repeatable. Options that would weaken host key checking or replace the tool\'s master connection are refused' -r
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l inventory -d 'Provision the machines of an inventory (YAML): the domain, and hosts with their SSH target, private address and roles (db, standby, collector, balancer), in order: the database first, then the standby, the collectors and the balancer' -r -F
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l limit -d 'Only these hosts of the inventory (by name); repeatable' -r
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l serial -d '`deploy` and `restart` of an inventory: change at most N collectors at once, so the others keep serving [default: all at once; 1 with a balancer]' -r
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l parallel -d 'How many targets are planned and changed at once' -r
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l color -d 'When to use colour (NO_COLOR is honoured with auto)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -s u -l purge -d 'Complete uninstallation: also remove the packages this tool installed'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -s h -l help -d 'Print help'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l dry-run -l plan -d 'Show the plan and change nothing'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -s y -l yes -d 'Answer yes to confirmations (resetdb, uninstall)'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l db-password-stdin -d 'Read the database password from standard input (first line)'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l detailed-exitcode -d 'With --dry-run: exit 0 when nothing would change, 3 when changes are pending'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l no-backup -d 'Do not write a pg_dump backup before resetdb or uninstall drop the database'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l tls-self-signed -d 'Serve HTTPS with a self-signed certificate for -H, generated on the first run and kept while valid (renewed within 30 days of its expiry)'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l tls-only -d 'Serve only HTTPS (nginx no longer listens on port 80); needs a certificate'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -l webapp -d 'Also deploy the legacy web UI (uWSGI) from the -r/-s/-t snapshot'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -s v -l verbose -d 'More output (commands as they run)'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -s V -l version -d 'Print version'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -f -a "completions" -d 'Print shell completions to stdout'
complete -c telem-deploy -n "__fish_telem_deploy_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c telem-deploy -n "__fish_telem_deploy_using_subcommand help; and not __fish_seen_subcommand_from completions help" -f -a "completions" -d 'Print shell completions to stdout'
complete -c telem-deploy -n "__fish_telem_deploy_using_subcommand help; and not __fish_seen_subcommand_from completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
