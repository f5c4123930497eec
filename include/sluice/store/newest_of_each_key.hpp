#pragma once
// Which record of each key a batch keeps as latest.

#include <vector>

#include "sluice/core/record.hpp"

namespace sluice {

/// The record of each key (per feature set) that latest keeps, in PostgreSQL, Redis and memory
/// alike: the newest event; among equal event times the first delivered (the lower offset, a
/// Kafka record before a pushed one, else the earlier in the batch). In the order the keys first
/// appear; the pointers are into `records`.
std::vector<const record*> newest_of_each_key(const std::vector<record>& records);

}  // namespace sluice
