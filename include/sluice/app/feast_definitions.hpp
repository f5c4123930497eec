#pragma once
// `sluice feast-definitions --config F`: the Feast repository objects (entities, feature views with
// their schemas and TTLs, push sources, feature services) that describe the config's feature sets,
// as a Python module a Feast project imports, so it can point at Sluice with no hand translation.

#include <string>

#include "sluice/config/config.hpp"

namespace sluice {

/// The module's text for `cfg`.
std::string feast_definitions(const config& cfg);

/// Prints it for the config at `config_path`: exit 0, or 1 when the config does not load.
int run_feast_definitions(const std::string& config_path);

}  // namespace sluice
