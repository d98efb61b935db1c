"""The command line in Chinese: ``--lang zh-CN`` (or ``MEMBERLENS_LANG`` / ``LANG``) translates its help, notes and
errors (argparse's own texts too), while its CSV and JSON output stays byte for byte what it is in English."""

from __future__ import annotations

import argparse
import contextlib
import io
import re

import pytest

from analytics import i18n
from tests.conftest import run

HAN = re.compile(r"[\u4e00-\u9fff]")
ENGLISH = {"MEMBERLENS_LANG": "en"}
CHINESE = {"MEMBERLENS_LANG": "zh-CN"}


def test_help_in_chinese_and_in_english() -> None:
    zh = run("analytics", "--lang", "zh-CN", "--help", env=ENGLISH)  # --lang wins over the environment
    assert zh.returncode == 0, zh.stderr
    assert zh.stdout.startswith("用法：python -m analytics")
    assert "在命令行中运行 MemberLens 分析。" in zh.stdout and "显示此帮助信息并退出" in zh.stdout
    assert "该时期的全部经营指标" in zh.stdout  # the subcommands' descriptions
    en = run("analytics", "--help", env=ENGLISH)
    assert en.stdout.startswith("usage: python -m analytics") and not HAN.search(en.stdout)
    assert "MemberLens analyses from the command line." in en.stdout


def test_a_subcommands_help_follows_memberlens_lang_and_lang() -> None:
    for env in (CHINESE, {"MEMBERLENS_LANG": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": "zh_CN.UTF-8"}):
        done = run("analytics", "privacy", "--help", env=env)
        assert done.returncode == 0, done.stderr
        assert "会员的个人信息权利请求" in done.stdout and "确认 erase 和 purge（它们会删除数据）" in done.stdout
        assert "--yes" in done.stdout and "{access,erase,correct" in done.stdout  # options and choices as they are
    english = run("analytics", "privacy", "--help", "--lang", "en", env=CHINESE)
    assert "confirm erase and purge (they delete data)" in english.stdout and not HAN.search(english.stdout)


def test_errors_in_chinese(duck_warehouse) -> None:
    bad_date = run("analytics", "kpis", "--url", duck_warehouse.url, "--start", "2026-02-30", "--lang", "zh-CN")
    assert bad_date.returncode == 2
    assert "'2026-02-30' 不是 YYYY-MM-DD 格式的日期" in bad_date.stderr and "错误" in bad_date.stderr
    bad_choice = run("analytics", "kpis", "--format", "xml", env=CHINESE)
    assert bad_choice.returncode == 2 and "无效的选项：'xml'" in bad_choice.stderr
    backwards = run("analytics", "kpis", "--url", duck_warehouse.url, "--start", "2026-03-01", "--end", "2026-02-01",
                    env=CHINESE)
    assert backwards.returncode == 2
    assert "错误：--end 2026-02-01 早于 --start 2026-03-01" in backwards.stderr
    refused = run("analytics", "privacy", "erase", "M00000001", "--url", duck_warehouse.url, env=CHINESE)
    assert refused.returncode == 2 and "请加上 --yes 确认" in refused.stderr


def test_output_is_the_same_in_both_languages_and_notes_are_translated(duck_warehouse) -> None:
    args = ("analytics", "kpis", "--url", duck_warehouse.url, "--start", "2031-01-01", "--end", "2031-01-31")
    en, zh = run(*args, env=ENGLISH), run(*args, "--lang", "zh-CN", env=ENGLISH)
    assert en.returncode == zh.returncode == 0, zh.stderr
    assert zh.stdout == en.stdout  # column names, KPI keys and figures: machine-readable, never translated
    assert "note: no orders, sessions or registrations between 2031-01-01 and 2031-01-31" in en.stderr
    assert "提示：2031-01-01 至 2031-01-31 之间没有订单、会话或注册" in zh.stderr
    for fmt in ("csv", "json"):
        roles = [run("analytics", "admin", "roles", "--format", fmt, env=env) for env in (ENGLISH, CHINESE)]
        assert roles[0].returncode == roles[1].returncode == 0, roles[1].stderr
        assert roles[0].stdout == roles[1].stdout and not HAN.search(roles[1].stdout)


def test_main_in_process_leaves_the_language_and_argparse_as_they_were(capsys) -> None:
    from analytics.cli import main

    saved = argparse._
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["--lang", "zh-CN", "--help"]) == 0
    assert "用法：" in out.getvalue()
    assert i18n.language() == "en" and argparse._ is saved  # nothing leaks into the caller's run
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["--help"]) == 0
    assert out.getvalue().startswith("usage: ")


@pytest.mark.parametrize(("given", "lang"), [("zh-CN", "zh_CN"), ("zh_CN.UTF-8", "zh_CN"), ("en", "en"),
                                             ("fr", "en")])
def test_requested_language(given: str, lang: str, monkeypatch) -> None:
    from analytics.cli import requested_language

    monkeypatch.setenv("MEMBERLENS_LANG", "en")
    assert requested_language(["kpis", "--lang", given]) == lang
    assert requested_language([f"--lang={given}", "kpis"]) == lang
    monkeypatch.setenv("MEMBERLENS_LANG", given)
    assert requested_language(["kpis"]) == lang
