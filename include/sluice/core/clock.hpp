#pragma once
// Wall-clock helpers and RFC 3339 formatting/parsing.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

/// Milliseconds since the Unix epoch, from the system clock.
std::int64_t now_ms();

/// "2026-11-21T10:00:00.123Z" for an epoch-milliseconds value (UTC, always milliseconds).
std::string format_rfc3339_ms(std::int64_t epoch_ms);

/// Parses RFC 3339 ("2026-11-21T10:00:00Z", fractional seconds and offsets allowed) into epoch ms.
std::optional<std::int64_t> parse_rfc3339(std::string_view text);

}  // namespace sluice
