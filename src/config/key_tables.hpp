#pragma once
// The key tables (key_tables.cpp): every section's keys, from the top of the file down to a
// transform's. Private to the config module; each table is built once, on first use.

#include <vector>

#include "feature_set_reader.hpp"
#include "key_spec.hpp"
#include "sluice/config/config.hpp"

namespace sluice::config_detail {

/// The top level of a config file: kafka, feature_sets, pipeline, postgres, redis, http, ...
const std::vector<key_spec<config>>& root_keys();

/// One element of "feature_sets".
const std::vector<key_spec<feature_set_config>>& feature_set_keys();

/// One field of a set's "fields" (the member name is the field's name).
const std::vector<key_spec<field_draft>>& field_keys();

/// One element of a set's "aggregations".
const std::vector<key_spec<aggregation_config>>& aggregation_keys();

/// One element of a set's "transforms": the keys of every op (check_transform judges which an op takes).
const std::vector<key_spec<transform_draft>>& transform_keys();

/// One element of a set's "expectations": the keys of every kind (finish_expectations judges which a kind takes).
const std::vector<key_spec<expectation_draft>>& expectation_keys();

/// A set's "dedup".
const std::vector<key_spec<dedup_config>>& dedup_keys();

}  // namespace sluice::config_detail
