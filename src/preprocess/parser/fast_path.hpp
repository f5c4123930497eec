#pragma once
// The record parser's fast path: simdjson reads the event and only the members the set reads
// become (small) nlohmann values, so that coercion, transforms and checks are the same code on
// the same values as on the nlohmann path. What it leaves to the nlohmann path is listed in
// fast_path.cpp.

#include <cstddef>
#include <cstdint>
#include <optional>

#include "plan.hpp"
#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"

namespace sluice::parser {

/// A message larger than this takes the nlohmann path: the thread's simdjson parser keeps buffers
/// of about 14 bytes per byte of the largest document it has read, and events are far smaller.
constexpr std::size_t fast_path_max_bytes = 64 * 1024;

/// The event read with simdjson, for a set whose plan is `fast`; nothing when the event must take
/// the nlohmann path from the start (including every dead letter, whose reason that path words).
/// Runs on any preprocess worker: each thread has its own simdjson parser and buffers.
std::optional<processed> parse_members(const raw_message& msg, const feature_set_config& set, const set_plan& plan,
                                       std::int64_t now);

}  // namespace sluice::parser
