-- wrk script: POST one valid header-format (v2.3.5 style) record per request, each with a
-- unique event id so the collector's resend dedupe never merges two benchmark records.
-- Usage: wrk -s post.lua URL -- RUN_NUMBER

local next_thread = 0

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  run = tonumber(args[1] or "0")
  counter = 0
  wrk.method = "POST"
  wrk.body = "bench payload from wrk\n"
  wrk.headers["Accept"] = "*/*"
  wrk.headers["record_format_version"] = "4"
  wrk.headers["classification"] = "org.clearlinux/bench/wrk"
  wrk.headers["severity"] = "2"
  wrk.headers["machine_id"] = "05510b6cfbd41f2f7220d73f24a0a1ea"
  wrk.headers["creation_timestamp"] = "1795758044"
  wrk.headers["arch"] = "x86_64"
  wrk.headers["host_type"] = "Intel Corporation|NUC7i5BNH|J31144-313"
  wrk.headers["build"] = "31870"
  wrk.headers["kernel_version"] = "6.18.44-fc-v657"
  wrk.headers["payload_format_version"] = "1"
  wrk.headers["system_name"] = "clear-linux-os"
  wrk.headers["board_name"] = "NUC7i5BNB|Intel Corporation"
  wrk.headers["cpu_model"] = "Intel(R) Core(TM) i5-7260U CPU @ 2.20GHz"
  wrk.headers["bios_version"] = "BNKBL357.86A.0062.2018.0222.1644"
  wrk.headers["X-Telemetry-TID"] = "6907c830-eed9-4ce9-81ae-76daf8d88f0f"
  wrk.headers["Content-Type"] = "application/text"
end

function request()
  counter = counter + 1
  wrk.headers["event_id"] = string.format("%08x%08x%016x", run, thread_id, counter)
  return wrk.format()
end
