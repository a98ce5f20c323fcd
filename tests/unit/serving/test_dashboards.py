"""deploy/: the Prometheus rules and the Grafana dashboard for `reprotab serve`. The rules pass
`promtool check rules`, and `promtool test rules` replays series (a 5xx burst, slow predictions, a
canary worse than its champion, a day-on-day shift of the predictions, ...) to show that each alert
fires when it says it does and no other one does. The dashboard is checked against a JSON schema
and its queries are parsed by promtool. Both use only the metric names the service exports
(reprotab/serving/telemetry.py), so renaming a metric on either side fails here."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.tools import debian_tool

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "reprotab-service.json"

# The service's metrics, as prometheus_client exports them.
COUNTERS = ("reprotab_requests", "reprotab_errors", "reprotab_predictions", "reprotab_reloads", "reprotab_feedback")
GAUGES = ("reprotab_in_flight", "reprotab_model_info", "reprotab_live_error")
HISTOGRAMS = ("reprotab_request_seconds", "reprotab_predicted_score", "reprotab_predicted_value")
SERIES = frozenset(
    [f"{name}_total" for name in COUNTERS]
    + list(GAUGES)
    + [f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")]
)

METRIC = re.compile(r"reprotab_[a-z_]+")
RECORDED = re.compile(r"[a-z_]+:[a-z0-9_:]+")  # level:metric:operations, the recording rules' names
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')  # label values: "/predict" must not read as a name


def metric_names(expr: str) -> set[str]:
    """The service metrics an expression reads; recording rules' names (with colons) are not."""
    return set(METRIC.findall(RECORDED.sub(" ", STRING.sub('""', expr))))


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[str]:
    """Every query on the dashboard: panel targets and template variable queries."""
    exprs = [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])]
    for variable in dashboard()["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


@pytest.fixture(scope="module")
def promtool() -> str:
    return debian_tool("promtool", "prometheus")


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


# --- the rules ----------------------------------------------------------------------------------


def test_rules_pass_promtool_check(promtool):
    done = run(promtool, "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_for_severity_summary_and_description():
    names = [rule["alert"] for rule in rules() if "alert" in rule]
    assert len(names) == len(set(names)), names
    for name, rule in alerts().items():
        assert "for" in rule, name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name


def test_the_alerts_asked_for_are_there():
    exprs = {name: " ".join(rule["expr"].split()) for name, rule in alerts().items()}
    assert 'up{job="reprotab"} == 0' in exprs["ReprotabDown"]
    assert "> 0.01" in exprs["ReprotabPredict5xxRate"]
    assert "> 0.25" in exprs["ReprotabPredictLatencyP99High"]
    assert "overloaded|timeout" in exprs["ReprotabLoadShedding"]
    assert 'outcome="failed"' in exprs["ReprotabReloadFailed"]
    for name in ("ReprotabPredictedScoreShift", "ReprotabPredictedValueShift"):
        assert "offset 1d" in exprs[name] and "> 0.1" in exprs[name], name
    assert '{route="canary"}' in exprs["ReprotabCanaryWorseThanChampion"]
    assert "> 0.05" in exprs["ReprotabCanaryWorseThanChampion"]
    assert alerts()["ReprotabCanaryWorseThanChampion"]["for"] == "15m"
    recorded = {rule["record"]: " ".join(rule["expr"].split()) for rule in rules() if "record" in rule}
    assert 'status=~"5.."' in recorded["job:reprotab_predict_5xx:ratio_rate5m"]
    assert "histogram_quantile(0.99," in recorded["job:reprotab_predict_latency_seconds:p99_5m"]


# Scenarios for `promtool test rules`: input series (promtool's expanding notation: 'a+bxn' is n+1
# samples from a, step b; '_' is no sample) and, at given times, every alert that is pending or
# firing, with its labels. Nothing else may be: `ALERTS` is compared whole.
TARGET = 'job="reprotab", instance="serve-1:8000"'
UP = {f"up{{{TARGET}}}": "1x400"}


def series(name: str, labels: str = "") -> str:
    return f"{name}{{{TARGET}{', ' + labels if labels else ''}}}"


SCENARIOS = {
    "a 5xx burst on /predict": {
        "series": {
            **UP,
            series("reprotab_requests_total", 'endpoint="/predict", status="200"'): "0+100x30",
            series("reprotab_requests_total", 'endpoint="/predict", status="500"'): "0+5x30",
            series("reprotab_requests_total", 'endpoint="/health", status="200"'): "0+10x30",
        },
        "expect": {
            "3m": [("ReprotabPredict5xxRate", "pending", 'job="reprotab", severity="critical"')],
            "15m": [("ReprotabPredict5xxRate", "firing", 'job="reprotab", severity="critical"')],
        },
    },
    "healthy traffic: 0.5% 5xx, fast, canary close to champion": {
        "series": {
            **UP,
            series("reprotab_requests_total", 'endpoint="/predict", status="200"'): "0+200x60",
            series("reprotab_requests_total", 'endpoint="/predict", status="500"'): "0+1x60",
            series("reprotab_request_seconds_bucket", 'endpoint="/predict", le="0.1"'): "0+190x60",
            series("reprotab_request_seconds_bucket", 'endpoint="/predict", le="0.25"'): "0+200x60",
            series("reprotab_request_seconds_bucket", 'endpoint="/predict", le="+Inf"'): "0+201x60",
            series("reprotab_errors_total", 'endpoint="/predict", kind="validation"'): "0+3x60",
            series("reprotab_live_error", 'route="champion"'): "0.10x60",
            series("reprotab_live_error", 'route="canary"'): "0.12x60",
            series("reprotab_reloads_total", 'outcome="unchanged"'): "0+1x60",
            series("reprotab_reloads_total", 'outcome="swapped"'): "1x60",
        },
        "expect": {"30m": [], "60m": []},
    },
    "slow predictions: 4% over 250 ms": {
        "series": {
            **UP,
            series("reprotab_request_seconds_bucket", 'endpoint="/predict", le="0.1"'): "0+90x30",
            series("reprotab_request_seconds_bucket", 'endpoint="/predict", le="0.25"'): "0+96x30",
            series("reprotab_request_seconds_bucket", 'endpoint="/predict", le="0.5"'): "0+100x30",
            series("reprotab_request_seconds_bucket", 'endpoint="/predict", le="+Inf"'): "0+100x30",
            series("reprotab_request_seconds_bucket", 'endpoint="/health", le="+Inf"'): "0+100x30",
        },
        "expect": {
            "5m": [("ReprotabPredictLatencyP99High", "pending", 'job="reprotab", severity="warning"')],
            "15m": [("ReprotabPredictLatencyP99High", "firing", 'job="reprotab", severity="warning"')],
        },
    },
    "load shedding and rate limiting": {
        "series": {
            **UP,
            series("reprotab_errors_total", 'endpoint="/predict", kind="overloaded"'): "0+3x20",
            series("reprotab_errors_total", 'endpoint="/predict", kind="timeout"'): "0x20",
            series("reprotab_errors_total", 'endpoint="/predict", kind="rate_limited"'): "0+1x20",
        },
        "expect": {
            "10m": [
                ("ReprotabLoadShedding", "firing", 'job="reprotab", kind="overloaded", severity="warning"'),
                ("ReprotabRateLimited", "pending", 'job="reprotab", severity="info"'),
            ],
            "20m": [
                ("ReprotabLoadShedding", "firing", 'job="reprotab", kind="overloaded", severity="warning"'),
                ("ReprotabRateLimited", "firing", 'job="reprotab", severity="info"'),
            ],
        },
    },
    "a failed reload, a second one, then quiet": {
        "series": {
            **UP,
            series("reprotab_reloads_total", 'outcome="swapped"'): "1x40",
            series("reprotab_reloads_total", 'outcome="failed"'): "_x10 1x5 2x25",
        },
        "expect": {
            "9m": [],
            "11m": [("ReprotabReloadFailed", "firing", f'{TARGET}, outcome="failed", severity="warning"')],
            "20m": [("ReprotabReloadFailed", "firing", f'{TARGET}, outcome="failed", severity="warning"')],
            "35m": [],
        },
    },
    "a canary worse than its champion": {
        "series": {
            **UP,
            series("reprotab_live_error", 'route="champion"'): "0.10x40",
            series("reprotab_live_error", 'route="canary"'): "0.10x4 0.20x35",
            series("reprotab_live_error", 'route="shadow"'): "0.50x40",
        },
        "expect": {
            "3m": [],
            "10m": [("ReprotabCanaryWorseThanChampion", "pending", f'{TARGET}, route="canary", severity="warning"')],
            "25m": [("ReprotabCanaryWorseThanChampion", "firing", f'{TARGET}, route="canary", severity="warning"')],
        },
    },
    "the service down": {
        "series": {f"up{{{TARGET}}}": "1x5 0x20"},
        "expect": {
            "5m": [],
            "7m": [("ReprotabDown", "pending", f'{TARGET}, severity="critical"')],
            "10m": [("ReprotabDown", "firing", f'{TARGET}, severity="critical"')],
        },
    },
    "no target scraped": {
        "series": {'up{job="node", instance="node-1:9100"}': "1x20"},
        "expect": {
            "5m": [("ReprotabTargetMissing", "pending", 'job="reprotab", severity="warning"')],
            "15m": [("ReprotabTargetMissing", "firing", 'job="reprotab", severity="warning"')],
        },
    },
    # 25.5 hours of 5-minute scrapes, 60 rows per scrape; the champion's mean score goes
    # from 0.3 to 0.5 at 24h, the canary's from 0.30 to 0.35 (under the 0.1 threshold)
    "the champion's mean score moves from 0.3 to 0.5 in a day": {
        "interval": "5m",
        "series": {
            **UP,
            series("reprotab_predicted_score_count", 'route="champion"'): "0+60x306",
            series("reprotab_predicted_score_sum", 'route="champion"'): "0+18x287 5196+30x18",
            series("reprotab_predicted_score_count", 'route="canary"'): "0+60x306",
            series("reprotab_predicted_score_sum", 'route="canary"'): "0+18x287 5187+21x18",
        },
        "expect": {
            "23h": [],
            "24h05m": [],
            "25h30m": [
                ("ReprotabPredictedScoreShift", "firing", 'job="reprotab", route="champion", severity="warning"')
            ],
        },
    },
    # the champion's mean predicted value goes from 100 to 120 (20%), the canary's to 105 (5%)
    "the champion's mean predicted value moves by 20% in a day": {
        "interval": "5m",
        "series": {
            **UP,
            series("reprotab_predicted_value_count", 'route="champion"'): "0+60x306",
            series("reprotab_predicted_value_sum", 'route="champion"'): "0+6000x287 1729200+7200x18",
            series("reprotab_predicted_value_count", 'route="canary"'): "0+60x306",
            series("reprotab_predicted_value_sum", 'route="canary"'): "0+6000x287 1728300+6300x18",
        },
        "expect": {
            "24h05m": [],
            "25h30m": [
                ("ReprotabPredictedValueShift", "firing", 'job="reprotab", route="champion", severity="warning"')
            ],
        },
    },
}


def unit_test_file(scenario: dict) -> dict:
    interval = scenario.get("interval", "1m")
    checks = [
        {
            "expr": "ALERTS",
            "eval_time": at,
            "exp_samples": [
                {"labels": f'ALERTS{{alertname="{name}", alertstate="{state}", {labels}}}', "value": 1}
                for name, state, labels in expected
            ],
        }
        for at, expected in scenario["expect"].items()
    ]
    return {
        "rule_files": [str(RULES)],
        "evaluation_interval": interval,
        "group_eval_order": ["reprotab-recording", "reprotab-alerts"],
        "tests": [
            {
                "interval": interval,
                "input_series": [{"series": name, "values": values} for name, values in scenario["series"].items()],
                "promql_expr_test": checks,
            }
        ],
    }


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_alerts_fire_when_they_should_and_only_then(promtool, tmp_path, name):
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(unit_test_file(SCENARIOS[name]), sort_keys=False))
    done = run(promtool, "test", "rules", str(path))
    assert done.returncode == 0, f"{name}:\n{done.stdout}{done.stderr}"
    assert "SUCCESS" in done.stdout


def test_every_alert_is_shown_firing_by_a_scenario():
    fired = {
        alert for scenario in SCENARIOS.values() for expected in scenario["expect"].values() for alert, *_ in expected
    }
    assert set(alerts()) == fired


# --- the dashboard ------------------------------------------------------------------------------

DATASOURCE = {
    "type": "object",
    "required": ["type", "uid"],
    "properties": {"type": {"const": "prometheus"}, "uid": {"const": "${DS_PROMETHEUS}"}},
}
TARGET_SCHEMA = {
    "type": "object",
    "required": ["datasource", "expr", "refId"],
    "properties": {
        "datasource": DATASOURCE,
        "expr": {"type": "string", "minLength": 1},
        "refId": {"type": "string", "pattern": "^[A-Z]$"},
        "legendFormat": {"type": "string"},
    },
}
PANEL_SCHEMA = {
    "type": "object",
    "required": ["id", "title", "type", "gridPos", "targets", "datasource"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "type": {"enum": ["timeseries", "heatmap", "stat", "table", "state-timeline"]},
        "datasource": DATASOURCE,
        "gridPos": {
            "type": "object",
            "required": ["h", "w", "x", "y"],
            "additionalProperties": False,
            "properties": {
                "h": {"type": "integer", "minimum": 1},
                "w": {"type": "integer", "minimum": 1, "maximum": 24},
                "x": {"type": "integer", "minimum": 0, "maximum": 23},
                "y": {"type": "integer", "minimum": 0},
            },
        },
        "targets": {"type": "array", "minItems": 1, "items": TARGET_SCHEMA},
        "fieldConfig": {"type": "object", "required": ["defaults"]},
        "options": {"type": "object"},
    },
}
DASHBOARD_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "templating", "time", "tags", "editable"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "title": {"const": "reprotab service"},
        "schemaVersion": {"const": 39},
        "id": {"type": "null"},  # Grafana assigns it on import
        "tags": {"type": "array", "items": {"type": "string"}},
        "time": {"type": "object", "required": ["from", "to"]},
        "refresh": {"type": "string"},
        "panels": {"type": "array", "minItems": 1, "items": PANEL_SCHEMA},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {
                    "type": "array",
                    "items": {"type": "object", "required": ["name", "type"]},
                    "allOf": [
                        {
                            "contains": {
                                "required": ["name", "type", "query"],
                                "properties": {
                                    "name": {"const": "DS_PROMETHEUS"},
                                    "type": {"const": "datasource"},
                                    "query": {"const": "prometheus"},
                                },
                            }
                        },
                        {
                            "contains": {
                                "required": ["name", "type", "query", "datasource"],
                                "properties": {
                                    "name": {"const": "route"},
                                    "type": {"const": "query"},
                                    "datasource": DATASOURCE,
                                },
                            }
                        },
                    ],
                }
            },
        },
    },
}


def test_dashboard_matches_its_schema():
    jsonschema.Draft202012Validator.check_schema(DASHBOARD_SCHEMA)
    errors = sorted(jsonschema.Draft202012Validator(DASHBOARD_SCHEMA).iter_errors(dashboard()), key=str)
    assert not errors, "\n".join(f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors)


def test_dashboard_panels_have_unique_ids_and_do_not_overlap():
    panels = dashboard()["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), ids
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[x, y]!r}"
                cells[x, y] = panel["title"]
    for panel in panels:
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_dashboard_shows_what_was_asked_for():
    panels = {panel["title"]: panel for panel in dashboard()["panels"]}
    uses = {title: set().union(*(metric_names(t["expr"]) for t in panel["targets"])) for title, panel in panels.items()}
    wanted = {
        "reprotab_requests_total",
        "reprotab_errors_total",
        "reprotab_request_seconds_bucket",
        "reprotab_in_flight",
        "reprotab_predictions_total",
        "reprotab_predicted_score_bucket",
        "reprotab_live_error",
        "reprotab_model_info",
        "reprotab_reloads_total",
    }
    assert wanted <= set().union(*uses.values())
    heatmaps = [panel for panel in panels.values() if panel["type"] == "heatmap"]
    assert any("reprotab_predicted_score_bucket" in metric_names(p["targets"][0]["expr"]) for p in heatmaps)
    assert all(target.get("format") == "heatmap" for panel in heatmaps for target in panel["targets"])
    latency = " ".join(t["expr"] for t in panels["/predict latency p50 / p99"]["targets"])
    assert "histogram_quantile(0.5," in latency and "histogram_quantile(0.99," in latency


def test_dashboard_queries_parse(promtool, tmp_path):
    """Each panel query, with Grafana's variables filled in, as a recording rule for promtool."""
    filled = {"$__rate_interval": "5m", "$__interval": "1m", "$route": ".*"}
    records = []
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in filled.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']!r}: a variable promtool cannot fill in: {expr}"
            records.append({"record": f"dashboard:panel_{panel['id']}:{target['refId'].lower()}", "expr": expr})
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    done = run(promtool, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


# --- the names ----------------------------------------------------------------------------------


def test_rules_and_dashboard_use_only_the_services_metric_names():
    used = {f"rule {rule.get('alert') or rule.get('record')}": metric_names(rule["expr"]) for rule in rules()} | {
        f"dashboard query {expr!r}": metric_names(expr) for expr in dashboard_exprs()
    }
    unknown = {where: sorted(names - SERIES) for where, names in used.items() if names - SERIES}
    assert not unknown, f"not metrics the service exports: {unknown}"
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    for rule in rules():
        for name in RECORDED.findall(STRING.sub('""', rule["expr"])):
            assert name in recorded, f"{rule.get('alert') or rule.get('record')} reads {name}, recorded nowhere"
    # every metric shows somewhere: a metric the service exports but nobody watches is a gap
    families = {name for names in used.values() for name in names}
    for name in (*COUNTERS, *GAUGES, *HISTOGRAMS):
        assert any(series.startswith(name) for series in families), f"{name} is on no panel and in no rule"


def test_metric_names_here_are_the_ones_the_service_registers():
    from reprotab.serving.telemetry import Telemetry  # here, so the file checks still run if it breaks

    exported: set[str] = set()
    for task in ("classification", "regression"):
        for family in Telemetry(task).registry.collect():
            if family.type == "counter":
                exported.add(f"{family.name}_total")
            elif family.type == "histogram":
                exported.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
            else:
                exported.add(family.name)
    assert exported == SERIES
