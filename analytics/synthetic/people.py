"""Fake but realistic member profiles: Chinese names, phone numbers, e-mail, city, consent.

Everything is vectorised with NumPy and Arrow string kernels, so a million profiles take a second
or two. Contact data is fake: phone numbers use real mobile prefixes with random digits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SURNAMES: tuple[tuple[str, str, float], ...] = (
    ("王", "wang", 7.1), ("李", "li", 7.0), ("张", "zhang", 6.7), ("刘", "liu", 5.4), ("陈", "chen", 4.5),
    ("杨", "yang", 3.1), ("黄", "huang", 2.2), ("赵", "zhao", 2.1), ("吴", "wu", 2.0), ("周", "zhou", 1.9),
    ("徐", "xu", 1.3), ("孙", "sun", 1.3), ("马", "ma", 1.2), ("朱", "zhu", 1.1), ("胡", "hu", 1.1),
    ("郭", "guo", 1.1), ("何", "he", 1.0), ("高", "gao", 1.0), ("林", "lin", 1.0), ("罗", "luo", 0.9),
    ("郑", "zheng", 0.9), ("梁", "liang", 0.8), ("谢", "xie", 0.6), ("宋", "song", 0.5), ("唐", "tang", 0.5),
    ("许", "xu", 0.5), ("韩", "han", 0.5), ("冯", "feng", 0.5), ("邓", "deng", 0.5), ("曹", "cao", 0.5),
    ("彭", "peng", 0.4), ("曾", "zeng", 0.4), ("肖", "xiao", 0.4), ("田", "tian", 0.4), ("董", "dong", 0.4),
    ("袁", "yuan", 0.4), ("潘", "pan", 0.3), ("于", "yu", 0.3), ("蒋", "jiang", 0.3), ("蔡", "cai", 0.3),
    ("杜", "du", 0.3), ("叶", "ye", 0.3), ("程", "cheng", 0.3), ("苏", "su", 0.3), ("魏", "wei", 0.3),
    ("丁", "ding", 0.3), ("任", "ren", 0.3), ("沈", "shen", 0.3), ("欧阳", "ouyang", 0.05), ("司马", "sima", 0.02),
)
GIVEN_FEMALE: tuple[tuple[str, str], ...] = (
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("艳", "yan"), ("娟", "juan"),
    ("霞", "xia"), ("婷", "ting"), ("雪", "xue"), ("琳", "lin"), ("颖", "ying"), ("欣", "xin"), ("悦", "yue"),
    ("萱", "xuan"), ("雨", "yu"), ("佳", "jia"), ("怡", "yi"), ("梦", "meng"), ("诗", "shi"), ("涵", "han"),
    ("思", "si"), ("慧", "hui"), ("洁", "jie"), ("玲", "ling"), ("倩", "qian"), ("瑶", "yao"), ("璐", "lu"),
)
GIVEN_MALE: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("杰", "jie"),
    ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("浩", "hao"), ("鹏", "peng"), ("宇", "yu"), ("轩", "xuan"),
    ("博", "bo"), ("文", "wen"), ("辉", "hui"), ("建", "jian"), ("俊", "jun"), ("峰", "feng"), ("子", "zi"),
    ("天", "tian"), ("睿", "rui"), ("阳", "yang"), ("鑫", "xin"), ("凯", "kai"), ("泽", "ze"), ("晨", "chen"),
)
EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("163.com", 0.25), ("126.com", 0.08), ("sina.com", 0.05), ("gmail.com", 0.07), ("outlook.com", 0.07),
    ("foxmail.com", 0.05), ("hotmail.com", 0.06), ("qq.com", 0.37),
)
MOBILE_PREFIXES = np.array(
    [130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157, 158, 159,
     166, 170, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 191, 198, 199],
    dtype=np.int64,
)
CITIES: tuple[tuple[str, str, float], ...] = (
    ("Shanghai", "East China", 8.0), ("Hangzhou", "East China", 4.0), ("Nanjing", "East China", 3.5),
    ("Suzhou", "East China", 4.0), ("Ningbo", "East China", 2.0), ("Hefei", "East China", 2.5),
    ("Fuzhou", "East China", 2.0), ("Xiamen", "East China", 1.5), ("Jinan", "East China", 2.0),
    ("Qingdao", "East China", 2.5), ("Wuxi", "East China", 1.5),
    ("Beijing", "North China", 8.0), ("Tianjin", "North China", 3.0), ("Shijiazhuang", "North China", 2.0),
    ("Taiyuan", "North China", 1.2), ("Hohhot", "North China", 0.6),
    ("Guangzhou", "South China", 6.0), ("Shenzhen", "South China", 6.5), ("Dongguan", "South China", 2.5),
    ("Foshan", "South China", 2.0), ("Nanning", "South China", 1.5), ("Haikou", "South China", 0.8),
    ("Wuhan", "Central China", 4.0), ("Changsha", "Central China", 3.0), ("Zhengzhou", "Central China", 3.5),
    ("Nanchang", "Central China", 1.5),
    ("Chengdu", "Southwest", 5.0), ("Chongqing", "Southwest", 5.0), ("Kunming", "Southwest", 2.0),
    ("Guiyang", "Southwest", 1.2),
    ("Xi'an", "Northwest", 3.5), ("Lanzhou", "Northwest", 1.0), ("Urumqi", "Northwest", 0.8),
    ("Yinchuan", "Northwest", 0.5),
    ("Shenyang", "Northeast", 2.2), ("Harbin", "Northeast", 2.0), ("Dalian", "Northeast", 1.8),
    ("Changchun", "Northeast", 1.5),
)


def choice(rng: np.random.Generator, weights: np.ndarray | list[float], size: int) -> np.ndarray:
    """Indices drawn with the given (unnormalised) weights: a fast ``rng.choice(p=...)``."""
    cum = np.cumsum(np.asarray(weights, dtype=np.float64))
    return np.minimum(np.searchsorted(cum, rng.random(size) * cum[-1], side="right"), len(cum) - 1)


def take(values: list[str] | tuple[str, ...], idx: np.ndarray) -> pa.Array:
    return pa.array(list(values), type=pa.string()).take(pa.array(idx))


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


@dataclass(frozen=True)
class Profiles:
    name: pa.Array
    phone: pa.Array
    email: pa.Array
    gender: pa.Array
    city: pa.Array
    region: pa.Array
    has_email: np.ndarray
    has_phone: np.ndarray


def make_profiles(rng: np.random.Generator, female: np.ndarray, young: np.ndarray) -> Profiles:
    """Names, contact data and location for members of the given genders.

    ``female`` is a bool array (gender), ``young`` marks members under 30, who leave their e-mail
    address less often.
    """
    n = len(female)
    s_idx = choice(rng, [s[2] for s in SURNAMES], n)
    surname = take([s[0] for s in SURNAMES], s_idx)
    surname_py = take([s[1] for s in SURNAMES], s_idx)
    pool = GIVEN_FEMALE + GIVEN_MALE
    offset = np.where(female, 0, len(GIVEN_FEMALE))
    g1 = offset + rng.integers(0, len(GIVEN_FEMALE), n)
    g2 = offset + rng.integers(0, len(GIVEN_FEMALE), n)
    two = rng.random(n) < 0.62
    chars = [p[0] for p in pool] + [""]
    pinyin = [p[1] for p in pool] + [""]
    g2 = np.where(two, g2, len(pool))
    name = _join(surname, take(chars, g1), take(chars, g2))

    # phone: a real mobile prefix and eight random digits; 4% of members left none
    number = MOBILE_PREFIXES[rng.integers(0, len(MOBILE_PREFIXES), n)] * 100_000_000 + rng.integers(0, 100_000_000, n)
    has_phone = rng.random(n) >= 0.04
    phone = pc.if_else(pa.array(has_phone), pc.cast(pa.array(number), pa.string()), pa.nulls(n, pa.string()))

    d_idx = choice(rng, [d[1] for d in EMAIL_DOMAINS], n)
    domain = take([d[0] for d in EMAIL_DOMAINS], d_idx)
    is_qq = d_idx == len(EMAIL_DOMAINS) - 1
    digits = pc.cast(pa.array(rng.integers(10, 9999, n)), pa.string())
    with_digits = rng.random(n) < 0.55
    local_name = _join(surname_py, take(pinyin, g1), take(pinyin, g2),
                       pc.if_else(pa.array(with_digits), digits, pa.array([""] * n)))
    qq_number = pc.cast(pa.array(rng.integers(10_000_000, 3_999_999_999, n)), pa.string())
    local = pc.if_else(pa.array(is_qq), qq_number, local_name)
    has_email = rng.random(n) >= np.where(young, 0.40, 0.22)
    email = pc.if_else(pa.array(has_email), _join(local, "@", domain), pa.nulls(n, pa.string()))

    unknown_gender = rng.random(n) < 0.04
    gender_idx = np.where(unknown_gender, 2, np.where(female, 0, 1))
    gender = pc.if_else(pa.array(unknown_gender), pa.nulls(n, pa.string()),
                        take(["female", "male", "female"], gender_idx))

    c_idx = choice(rng, [c[2] for c in CITIES], n)
    city = take([c[0] for c in CITIES], c_idx)
    region = take([c[1] for c in CITIES], c_idx)
    return Profiles(name, phone, email, gender, city, region, has_email, has_phone)
