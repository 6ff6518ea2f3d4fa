# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_telem_collector_global_optspecs
    string join \n config= listen= database-url= database-password-file= database-ca-file= read-database-url= telemetry-id= body-limit-bytes= header-timeout-secs= writer-connections= reader-connections= read-statement-timeout-ms= body-budget-bytes= pool-size= batch-max-records= batch-max-wait-ms= payload-search-index= retention-max-days= retention-purge-time= log-level= retention-classifications= h/help V/version
end

function __fish_telem_collector_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_telem_collector_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_telem_collector_using_subcommand
    set -l cmd (__fish_telem_collector_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c telem-collector -n "__fish_telem_collector_needs_command" -l config -d 'Config file (TOML); a missing file is fine when env and flags give database_url' -r -F
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l listen -d 'HOST:PORT or unix:/PATH' -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l database-url -d 'postgres://USER@HOST:PORT/DB (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l database-password-file -d 'File holding the database password' -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l database-ca-file -d 'PEM file of the CA(s) the database\'s certificate must chain to (TLS, verify-full)' -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l read-database-url -d 'postgres://USER@HOST:PORT/DB the readers (UI, query API) use (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l telemetry-id -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l body-limit-bytes -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l header-timeout-secs -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l writer-connections -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l reader-connections -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l read-statement-timeout-ms -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l body-budget-bytes -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l pool-size -d 'Deprecated: reader_connections' -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l batch-max-records -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l batch-max-wait-ms -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l payload-search-index -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l retention-max-days -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l retention-purge-time -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l log-level -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -l retention-classifications -d 'Inline TOML table, e.g. \'{ "org.clearlinux/hello/*" = 7 }\'' -r
complete -c telem-collector -n "__fish_telem_collector_needs_command" -s h -l help -d 'Print help'
complete -c telem-collector -n "__fish_telem_collector_needs_command" -s V -l version -d 'Print version'
complete -c telem-collector -n "__fish_telem_collector_needs_command" -f -a "serve" -d 'Receive records over HTTP (the default)'
complete -c telem-collector -n "__fish_telem_collector_needs_command" -f -a "migrate" -d 'Apply the embedded schema migrations (idempotent)'
complete -c telem-collector -n "__fish_telem_collector_needs_command" -f -a "purge" -d 'Delete records older than the retention settings'
complete -c telem-collector -n "__fish_telem_collector_needs_command" -f -a "check-config" -d 'Load and check the configuration, then exit (0 valid, 2 invalid)'
complete -c telem-collector -n "__fish_telem_collector_needs_command" -f -a "probe" -d 'Health check with this binary alone (no curl needed): GET the URL, print the status code; exit 0 on 200, 1 otherwise'
complete -c telem-collector -n "__fish_telem_collector_needs_command" -f -a "agent" -d 'Internal: run the shell scripts telem-deploy sends over one SSH session (see agent.rs)'
complete -c telem-collector -n "__fish_telem_collector_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l config -d 'Config file (TOML); a missing file is fine when env and flags give database_url' -r -F
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l listen -d 'HOST:PORT or unix:/PATH' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l database-url -d 'postgres://USER@HOST:PORT/DB (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l database-password-file -d 'File holding the database password' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l database-ca-file -d 'PEM file of the CA(s) the database\'s certificate must chain to (TLS, verify-full)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l read-database-url -d 'postgres://USER@HOST:PORT/DB the readers (UI, query API) use (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l telemetry-id -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l body-limit-bytes -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l header-timeout-secs -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l writer-connections -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l reader-connections -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l read-statement-timeout-ms -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l body-budget-bytes -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l pool-size -d 'Deprecated: reader_connections' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l batch-max-records -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l batch-max-wait-ms -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l payload-search-index -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l retention-max-days -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l retention-purge-time -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l log-level -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -l retention-classifications -d 'Inline TOML table, e.g. \'{ "org.clearlinux/hello/*" = 7 }\'' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand serve" -s h -l help -d 'Print help'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l config -d 'Config file (TOML); a missing file is fine when env and flags give database_url' -r -F
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l listen -d 'HOST:PORT or unix:/PATH' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l database-url -d 'postgres://USER@HOST:PORT/DB (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l database-password-file -d 'File holding the database password' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l database-ca-file -d 'PEM file of the CA(s) the database\'s certificate must chain to (TLS, verify-full)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l read-database-url -d 'postgres://USER@HOST:PORT/DB the readers (UI, query API) use (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l telemetry-id -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l body-limit-bytes -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l header-timeout-secs -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l writer-connections -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l reader-connections -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l read-statement-timeout-ms -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l body-budget-bytes -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l pool-size -d 'Deprecated: reader_connections' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l batch-max-records -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l batch-max-wait-ms -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l payload-search-index -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l retention-max-days -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l retention-purge-time -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l log-level -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l retention-classifications -d 'Inline TOML table, e.g. \'{ "org.clearlinux/hello/*" = 7 }\'' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -l check -d 'Only report: exit 0 when the schema is current, 3 when migrations are pending'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l config -d 'Config file (TOML); a missing file is fine when env and flags give database_url' -r -F
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l listen -d 'HOST:PORT or unix:/PATH' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l database-url -d 'postgres://USER@HOST:PORT/DB (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l database-password-file -d 'File holding the database password' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l database-ca-file -d 'PEM file of the CA(s) the database\'s certificate must chain to (TLS, verify-full)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l read-database-url -d 'postgres://USER@HOST:PORT/DB the readers (UI, query API) use (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l telemetry-id -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l body-limit-bytes -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l header-timeout-secs -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l writer-connections -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l reader-connections -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l read-statement-timeout-ms -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l body-budget-bytes -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l pool-size -d 'Deprecated: reader_connections' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l batch-max-records -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l batch-max-wait-ms -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l payload-search-index -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l retention-max-days -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l retention-purge-time -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l log-level -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l retention-classifications -d 'Inline TOML table, e.g. \'{ "org.clearlinux/hello/*" = 7 }\'' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -l dry-run -d 'Only print how many records each rule would delete'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand purge" -s h -l help -d 'Print help'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l config -d 'Config file (TOML); a missing file is fine when env and flags give database_url' -r -F
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l listen -d 'HOST:PORT or unix:/PATH' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l database-url -d 'postgres://USER@HOST:PORT/DB (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l database-password-file -d 'File holding the database password' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l database-ca-file -d 'PEM file of the CA(s) the database\'s certificate must chain to (TLS, verify-full)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l read-database-url -d 'postgres://USER@HOST:PORT/DB the readers (UI, query API) use (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l telemetry-id -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l body-limit-bytes -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l header-timeout-secs -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l writer-connections -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l reader-connections -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l read-statement-timeout-ms -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l body-budget-bytes -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l pool-size -d 'Deprecated: reader_connections' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l batch-max-records -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l batch-max-wait-ms -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l payload-search-index -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l retention-max-days -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l retention-purge-time -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l log-level -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -l retention-classifications -d 'Inline TOML table, e.g. \'{ "org.clearlinux/hello/*" = 7 }\'' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l host-header -d 'The Host header (default: the URL\'s host), e.g. the domain nginx serves' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l timeout -d 'Seconds to connect and to wait for the answer' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l config -d 'Config file (TOML); a missing file is fine when env and flags give database_url' -r -F
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l listen -d 'HOST:PORT or unix:/PATH' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l database-url -d 'postgres://USER@HOST:PORT/DB (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l database-password-file -d 'File holding the database password' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l database-ca-file -d 'PEM file of the CA(s) the database\'s certificate must chain to (TLS, verify-full)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l read-database-url -d 'postgres://USER@HOST:PORT/DB the readers (UI, query API) use (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l telemetry-id -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l body-limit-bytes -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l header-timeout-secs -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l writer-connections -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l reader-connections -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l read-statement-timeout-ms -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l body-budget-bytes -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l pool-size -d 'Deprecated: reader_connections' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l batch-max-records -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l batch-max-wait-ms -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l payload-search-index -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l retention-max-days -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l retention-purge-time -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l log-level -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l retention-classifications -d 'Inline TOML table, e.g. \'{ "org.clearlinux/hello/*" = 7 }\'' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -l any-status -d 'Exit 0 on any HTTP answer (the status code is printed); 1 only when none comes'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand probe" -s h -l help -d 'Print help'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l config -d 'Config file (TOML); a missing file is fine when env and flags give database_url' -r -F
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l listen -d 'HOST:PORT or unix:/PATH' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l database-url -d 'postgres://USER@HOST:PORT/DB (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l database-password-file -d 'File holding the database password' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l database-ca-file -d 'PEM file of the CA(s) the database\'s certificate must chain to (TLS, verify-full)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l read-database-url -d 'postgres://USER@HOST:PORT/DB the readers (UI, query API) use (without password)' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l telemetry-id -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l body-limit-bytes -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l header-timeout-secs -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l writer-connections -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l reader-connections -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l read-statement-timeout-ms -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l body-budget-bytes -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l pool-size -d 'Deprecated: reader_connections' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l batch-max-records -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l batch-max-wait-ms -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l payload-search-index -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l retention-max-days -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l retention-purge-time -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l log-level -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -l retention-classifications -d 'Inline TOML table, e.g. \'{ "org.clearlinux/hello/*" = 7 }\'' -r
complete -c telem-collector -n "__fish_telem_collector_using_subcommand agent" -s h -l help -d 'Print help'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand help; and not __fish_seen_subcommand_from serve migrate purge check-config probe agent help" -f -a "serve" -d 'Receive records over HTTP (the default)'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand help; and not __fish_seen_subcommand_from serve migrate purge check-config probe agent help" -f -a "migrate" -d 'Apply the embedded schema migrations (idempotent)'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand help; and not __fish_seen_subcommand_from serve migrate purge check-config probe agent help" -f -a "purge" -d 'Delete records older than the retention settings'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand help; and not __fish_seen_subcommand_from serve migrate purge check-config probe agent help" -f -a "check-config" -d 'Load and check the configuration, then exit (0 valid, 2 invalid)'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand help; and not __fish_seen_subcommand_from serve migrate purge check-config probe agent help" -f -a "probe" -d 'Health check with this binary alone (no curl needed): GET the URL, print the status code; exit 0 on 200, 1 otherwise'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand help; and not __fish_seen_subcommand_from serve migrate purge check-config probe agent help" -f -a "agent" -d 'Internal: run the shell scripts telem-deploy sends over one SSH session (see agent.rs)'
complete -c telem-collector -n "__fish_telem_collector_using_subcommand help; and not __fish_seen_subcommand_from serve migrate purge check-config probe agent help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
