"""Synthetic card transactions in the Kaggle "Credit Card Transactions Fraud Detection" CSV format.

The output has exactly the published layout (the design notes' ``data/README.md``): the unnamed leading
index column (optional), then ``contract.COLUMN_NAMES``; CSV quoting as Python's ``csv`` module does it
(QUOTE_MINIMAL), ``\\n`` line endings, rows sorted by time. Only numpy and the standard library are used
(the API image imports this module and has no pandas).

The data is built so that fraud shows in *behaviour on a card over time*, not in any single column:

* Legit: every card has a persistent cardholder, its own activity rate, category preferences
  (Dirichlet), spending level (a per-card and per-card-category multiplier on per-category lognormal
  amounts, with heavy tails: some legit purchases are large), and night propensity (about 12% of legit
  transactions fall in 22:00-04:00; online categories are a little more frequent at night). Weekends
  and December are busier.
* Fraud: a compromised card gets an *episode*: a burst of 2-15 transactions within one to three days,
  mostly at night, mostly in online / high-value categories, at several times the card's usual amount
  for the category; about 45% of episodes start with one or two small "test" charges. The card's
  legit transactions continue alongside. About 12% of fraud is modest in amount, and some legit
  transactions are large, at night and online, so single columns overlap; the per-card history
  (transactions in the last 24 h, amount against the card's habit) separates far better.

Row count: exactly ``rows``. ``round(rows * fraud_rate)`` of them are fraud; the rest are legit,
spread over (day, hour) slots with one multinomial draw, then over cards by their rates.

Streaming: the fraud episodes (a fraction ``fraud_rate`` of the rows) are planned up front; legit
rows are generated in time chunks of about ``CHUNK_ROWS`` rows (consecutive hours), merged with the
fraud rows of the same period, sorted and written. Memory is bounded by the chunk size, not by
``rows`` (plus a few small arrays per card, per day and per fraud row).

Determinism: every random stream is derived from ``seed`` (``numpy.random.SeedSequence``), so the
same arguments give a byte-identical file (with the same numpy version: numpy does not promise
identical ``Generator`` streams across releases).
"""

from __future__ import annotations

import calendar
import csv
import functools
import io
import math
import numbers
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO

import numpy as np

from fraud_detection import contract

__all__ = [
    "HEADER",
    "UNIX_TIME_OFFSET_S",
    "GenerationSummary",
    "generate_csv",
    "generate_csv_monthly",
    "generate_rows",
    "header_line",
    "month_file_name",
]

# The published files' unix_time is trans_date_trans_time (read as UTC) minus a constant: 7 years
# (2557 days), e.g. 2019-01-01 00:00:18 -> 1325376018 (= 2012-01-01 00:00:18 UTC).
UNIX_TIME_OFFSET_S = 220_924_800

HEADER: tuple[str, ...] = ("", *contract.COLUMN_NAMES)
CHUNK_ROWS = 20_000  # legit rows per generated time chunk (memory bound)
MERCHANTS_PER_CATEGORY = 48

DAY_S = 86_400
HOUR_S = 3_600
CATS = contract.CATEGORIES
N_CATS = len(CATS)
_CI = {c: i for i, c in enumerate(CATS)}

# RNG stream tags (SeedSequence spawn keys): one independent stream per purpose.
_S_PROFILES, _S_SLOTS, _S_FRAUD, _S_CHUNK, _S_MERCHANTS = 1, 2, 3, 4, 5

# --- legit behaviour ------------------------------------------------------------------------------
# Category shares (roughly those of the published data) and amounts: median dollars, lognormal sigma,
# probability of a "big ticket" purchase (amount x ~8, heavy tail).
_CAT_SHARE = {
    "entertainment": 7.2,
    "food_dining": 7.0,
    "gas_transport": 10.2,
    "grocery_net": 3.5,
    "grocery_pos": 9.5,
    "health_fitness": 6.6,
    "home": 9.5,
    "kids_pets": 8.7,
    "misc_net": 4.9,
    "misc_pos": 6.1,
    "personal_care": 7.0,
    "shopping_net": 7.5,
    "shopping_pos": 9.0,
    "travel": 3.1,
}
_AMT = {  # category: (median $, sigma, P(big ticket))
    "entertainment": (45.0, 0.8, 0.010),
    "food_dining": (35.0, 0.7, 0.005),
    "gas_transport": (50.0, 0.45, 0.0),
    "grocery_net": (50.0, 0.6, 0.005),
    "grocery_pos": (80.0, 0.45, 0.005),
    "health_fitness": (40.0, 0.7, 0.005),
    "home": (45.0, 0.8, 0.020),
    "kids_pets": (40.0, 0.8, 0.010),
    "misc_net": (25.0, 1.0, 0.025),
    "misc_pos": (30.0, 1.0, 0.010),
    "personal_care": (25.0, 0.8, 0.005),
    "shopping_net": (30.0, 1.1, 0.035),
    "shopping_pos": (40.0, 1.0, 0.030),
    "travel": (12.0, 1.1, 0.050),
}
_BIG_TICKET_MEDIAN, _BIG_TICKET_SIGMA = 8.0, 0.5
_LEGIT_MAX_CENTS = 25_000_00  # the published data's largest amount is ~$29k; keep the lognormal tails sane
# At night some categories are more / less likely than by day (online up, errands down).
_NIGHT_TILT = {
    "grocery_net": 1.8,
    "misc_net": 1.8,
    "shopping_net": 1.8,
    "entertainment": 1.3,
    "food_dining": 1.3,
    "grocery_pos": 0.7,
    "health_fitness": 0.6,
    "home": 0.7,
    "kids_pets": 0.7,
    "personal_care": 0.7,
}
_PREF_CONCENTRATION = 20.0  # Dirichlet concentration of per-card category preferences
# Legit hour profiles (relative weights). Night = [22:00, 04:00), the features' definition.
_NIGHT_HOURS = (22, 23, 0, 1, 2, 3)
_LEGIT_NIGHT_W = {22: 1.0, 23: 0.8, 0: 0.55, 1: 0.45, 2: 0.35, 3: 0.3}
_LEGIT_DAY_W = {
    4: 0.3, 5: 0.5, 6: 0.9, 7: 1.3, 8: 1.6, 9: 1.8, 10: 1.9, 11: 2.0, 12: 2.2,
    13: 2.1, 14: 2.0, 15: 2.0, 16: 2.1, 17: 2.2, 18: 2.2, 19: 2.0, 20: 1.7, 21: 1.3,
}  # fmt: skip
_NIGHT_SHARE_BASE = 0.11  # per card: x lognormal(0, 0.5), clipped -> ~12% of legit at night overall
_WEEKEND_BOOST = 1.15
_MONTH_W = (0.85, 0.85, 0.97, 1.0, 1.0, 1.05, 1.05, 1.0, 0.95, 0.95, 1.05, 1.3)

# --- fraud behaviour ------------------------------------------------------------------------------
_FRAUD_CAT_W = {
    "shopping_net": 0.27,
    "grocery_pos": 0.22,
    "misc_net": 0.16,
    "shopping_pos": 0.15,
    "misc_pos": 0.04,
    "entertainment": 0.03,
    "home": 0.03,
    "travel": 0.03,
    "health_fitness": 0.02,
    "personal_care": 0.02,
    "gas_transport": 0.03,
}
_TEST_CAT_W = {"gas_transport": 0.45, "misc_net": 0.2, "shopping_net": 0.2, "grocery_net": 0.15}
# Typical fraud amount per category; the ratio to the card's median for the category is that over the
# category median, bounded to [3, 20], times lognormal noise.
_FRAUD_TARGET = {
    "shopping_net": 850.0,
    "misc_net": 750.0,
    "grocery_pos": 300.0,
    "shopping_pos": 800.0,
    "misc_pos": 250.0,
    "entertainment": 400.0,
    "home": 250.0,
    "travel": 600.0,
    "health_fitness": 200.0,
    "personal_care": 200.0,
    "gas_transport": 150.0,
}
_FRAUD_NIGHT_W = {22: 1.0, 23: 1.0, 0: 0.9, 1: 0.85, 2: 0.8, 3: 0.7}
_EPISODE_SIZE_MEDIAN, _EPISODE_SIZE_MIN, _EPISODE_SIZE_MAX = 7.0, 2, 15
_EPISODE_DAYS_P = (0.45, 0.35, 0.20)  # an episode spans 1, 2 or 3 calendar days (plus the night after)
_P_NIGHT_EPISODE = ((0.8, 0.92), (0.2, 0.25))  # (share of episodes, P(night) inside them): ~78% night
_P_TEST_CHARGES = 0.45
_P_MODEST_FRAUD = 0.12
_P_REPEAT_VICTIM = 0.04

# --- cardholders ----------------------------------------------------------------------------------
_FIRST_F = (
    "Mary", "Jennifer", "Linda", "Patricia", "Elizabeth", "Susan", "Jessica", "Sarah", "Karen", "Nancy",
    "Lisa", "Margaret", "Ashley", "Kimberly", "Emily", "Donna", "Michelle", "Carol", "Amanda", "Melissa",
    "Deborah", "Stephanie", "Rebecca", "Laura", "Sharon", "Cynthia", "Kathleen", "Amy", "Shannon", "Angela",
    "Heather", "Kaitlyn", "Courtney", "Jamie", "Dana", "Katie", "Tina", "Brenda", "Alicia", "Megan",
)  # fmt: skip
_FIRST_M = (
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Charles",
    "Christopher", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Paul", "Andrew", "Joshua",
    "Kenneth", "Kevin", "Brian", "George", "Edward", "Ronald", "Timothy", "Jason", "Jeffrey", "Ryan",
    "Gerald", "Tanner", "Joel", "Roger", "Miguel", "Justin", "Corey", "Darryl", "Gary", "Taylor",
)  # fmt: skip
_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Rocha", "Parsons", "Spencer", "Parker", "Pacheco", "Bowman", "Morrison", "Levine", "Hicks", "Watson",
    "O'Neal", "Short", "Ramos", "Grant", "Jordan", "Santiago", "Atkins", "Vasquez", "Russell", "Price",
)  # fmt: skip
_STREET_NAMES = (
    "Miller", "Ashley", "Kathleen", "Mason", "Tina", "Douglas", "Ayala", "Jennifer", "Mckinney", "Burton",
    "Harold", "Rice", "James", "Leslie", "Robertson", "Jeffrey", "Barrett", "Ronald", "Brandi", "Michael",
    "Luis", "Laura", "Brown", "Pena", "Jackson", "Frye", "Turner", "Katie", "Perez", "Oak", "Maple", "Cedar",
    "Pine", "Elm", "Washington", "Lake", "Hill", "Park", "Sunset", "River",
)  # fmt: skip
_STREET_SUFFIXES = (
    "Circle", "Crossroad", "Ramp", "Common", "Mall", "Lakes", "Summit", "Oval", "Mission", "Walks", "Keys",
    "Hill", "Meadow", "Roads", "Courts", "Underpass", "Divide", "Parks", "Well", "Throughway", "Villages",
    "Ports", "Fields", "Lock", "Shoals", "Valley", "Street", "Avenue", "Road", "Drive", "Lane", "Way",
)  # fmt: skip
# (city, state, zip, lat, long, city_pop): real US places, a mix of small towns and large cities.
_PLACES = (
    ("Prairie Creek", "IN", "47869", 39.4336, -87.4101, 137),
    ("Crook", "CO", "80726", 40.8747, -102.8472, 381),
    ("Zirconia", "NC", "28790", 35.2153, -82.4574, 3205),
    ("Saint Mary", "KY", "40063", 37.5795, -85.3551, 789),
    ("Edna", "KS", "67342", 37.0561, -95.3442, 969),
    ("Ira", "IA", "50127", 41.7771, -93.2058, 29),
    ("Kamrar", "IA", "50132", 42.3945, -93.7279, 367),
    ("Beech Bottom", "WV", "26030", 40.2259, -80.6514, 516),
    ("Veedersburg", "IN", "47987", 40.1186, -87.2602, 4049),
    ("Corriganville", "MD", "21524", 39.6967, -78.8031, 626),
    ("Warner Robins", "GA", "31093", 32.6368, -83.6395, 81138),
    ("Wilsonville", "AL", "35186", 33.2293, -86.5299, 4931),
    ("Liguori", "MO", "63057", 38.3419, -90.4082, 56),
    ("Pine Grove Mills", "PA", "16868", 40.7264, -77.9118, 483),
    ("Portsmouth", "IA", "51565", 41.6484, -95.5108, 501),
    ("Virginia Beach", "VA", "23451", 36.8585, -76.0019, 437994),
    ("Truxton", "NY", "13158", 42.7085, -76.0189, 1855),
    ("Northampton", "PA", "18067", 40.6998, -75.4874, 17852),
    ("Bismarck", "ND", "58501", 46.8234, -100.7748, 78133),
    ("Gore Springs", "MS", "38929", 33.7245, -89.5754, 1317),
    ("Morganville", "NJ", "07751", 40.3529, -74.2779, 19736),
    ("Nancy", "KY", "42544", 37.0631, -84.7192, 5843),
    ("Preston", "MN", "55965", 43.6641, -92.096, 2376),
    ("Meridian", "TX", "76665", 31.929, -97.6443, 2526),
    ("James Creek", "PA", "16657", 40.3567, -78.1887, 1343),
    ("Fountain", "FL", "32438", 30.4753, -85.4293, 4060),
    ("Raccoon", "KY", "41557", 37.4935, -82.4221, 1716),
    ("Danville", "WA", "99121", 48.9725, -118.4884, 145),
    ("Norfolk", "VA", "23513", 36.8914, -76.2396, 242803),
    ("Nelson", "WI", "54756", 44.4295, -92.0007, 916),
    ("Houston", "TX", "77036", 29.7199, -95.5336, 2906700),
    ("Phoenix", "AZ", "85020", 33.5623, -112.0559, 1312922),
    ("San Antonio", "TX", "78208", 29.44, -98.459, 1595797),
    ("Dallas", "TX", "75214", 32.8248, -96.7492, 1263321),
    ("Philadelphia", "PA", "19149", 40.0366, -75.0664, 1526206),
    ("Brooklyn", "NY", "11230", 40.6225, -73.9652, 2504700),
    ("Chicago", "IL", "60634", 41.9434, -87.8066, 2680484),
    ("Los Angeles", "CA", "90041", 34.1379, -118.2131, 2383912),
    ("Denver", "CO", "80219", 39.6959, -105.0382, 1082002),
    ("Seattle", "WA", "98117", 47.6886, -122.3802, 608660),
    ("Portland", "OR", "97214", 45.5135, -122.6387, 583776),
    ("Atlanta", "GA", "30318", 33.7884, -84.4484, 420003),
    ("Miami", "FL", "33157", 25.6066, -80.3424, 417650),
    ("Columbus", "OH", "43223", 39.9294, -83.0505, 787033),
    ("Indianapolis", "IN", "46237", 39.6708, -86.0978, 820445),
    ("Kansas City", "MO", "64131", 38.9696, -94.5771, 459787),
    ("Omaha", "NE", "68124", 41.2337, -96.0476, 408958),
    ("Albuquerque", "NM", "87111", 35.1275, -106.5263, 545852),
    ("Tulsa", "OK", "74104", 36.1466, -95.9513, 413505),
    ("Birmingham", "AL", "35211", 33.4565, -86.8516, 212237),
    ("Little Rock", "AR", "72205", 34.7436, -92.3417, 197357),
    ("Salt Lake City", "UT", "84105", 40.7387, -111.8594, 186440),
    ("Boise", "ID", "83709", 43.5658, -116.2826, 214237),
    ("Burlington", "VT", "05401", 44.4784, -73.212, 42417),
    ("Portland", "ME", "04101", 43.6615, -70.2553, 66194),
    ("Providence", "RI", "02908", 41.8385, -71.4385, 178042),
    ("Hartford", "CT", "06106", 41.7503, -72.6986, 124775),
    ("Manchester", "NH", "03103", 42.9679, -71.4511, 110378),
    ("Billings", "MT", "59101", 45.7748, -108.5007, 109577),
    ("Cheyenne", "WY", "82001", 41.14, -104.8202, 63624),
    ("Sioux Falls", "SD", "57106", 43.5222, -96.7877, 178000),
    ("Fargo", "ND", "58103", 46.8566, -96.8166, 124662),
    ("Madison", "WI", "53711", 43.0314, -89.4508, 248951),
    ("Lansing", "MI", "48906", 42.7681, -84.5789, 116020),
    ("Lexington", "KY", "40503", 38.0281, -84.5258, 246003),
    ("Knoxville", "TN", "37917", 36.0003, -83.9192, 186239),
    ("Charleston", "WV", "25302", 38.3898, -81.6543, 46536),
    ("Richmond", "VA", "23223", 37.5473, -77.3801, 227032),
    ("Raleigh", "NC", "27610", 35.7396, -78.5709, 469298),
    ("Columbia", "SC", "29209", 33.9662, -80.945, 133451),
    ("Jackson", "MS", "39206", 32.3699, -90.172, 160628),
    ("Baton Rouge", "LA", "70809", 30.3988, -91.0732, 225374),
    ("Las Vegas", "NV", "89108", 36.2066, -115.2233, 651319),
    ("Sacramento", "CA", "95823", 38.4743, -121.4436, 513624),
    ("Fresno", "CA", "93722", 36.7973, -119.9351, 530093),
    ("Anchorage", "AK", "99508", 61.2004, -149.813, 291826),
    ("Honolulu", "HI", "96816", 21.2883, -157.7927, 345064),
    ("Wilmington", "DE", "19805", 39.7439, -75.5861, 70898),
    ("Annapolis", "MD", "21401", 38.9784, -76.4922, 39321),
    ("Bozeman", "MT", "59715", 45.677, -111.0429, 49831),
    ("Ames", "IA", "50010", 42.0347, -93.62, 66258),
    ("Hays", "KS", "67601", 38.8792, -99.3268, 20845),
    ("Elko", "NV", "89801", 40.8324, -115.7631, 20564),
    ("Moab", "UT", "84532", 38.5733, -109.5498, 5366),
    ("Taos", "NM", "87571", 36.4072, -105.5731, 5716),
    ("Marfa", "TX", "79843", 30.3096, -104.0206, 1747),
    ("Bar Harbor", "ME", "04609", 44.3876, -68.2039, 5535),
    ("Galena", "IL", "61036", 42.4167, -90.429, 3308),
    ("Dubois", "WY", "82513", 43.5333, -109.6299, 971),
)
_JOBS = (
    "Television camera operator", "Emergency planning/management officer", "Equities trader",
    "Engineer, broadcasting (operations)", "Production designer, theatre/television/film",
    "Higher education careers adviser", "Visual merchandiser", "Programmer, systems", "Therapist, art",
    "Tree surgeon", "Animal technologist", "Pension scheme manager", "Training and development officer",
    "Psychiatrist", "Catering manager", "Water quality scientist", "Engineer, automotive", "Art therapist",
    "Therapist, music", "Therapist, nutritional", "Data processing manager", "Scientist, marine",
    "Diplomatic Services operational officer", "Television/film/video producer", "Operational researcher",
    "Systems developer", "Warden/ranger", "Seismic interpreter", "Surveyor, land/geomatics",
    "Teacher, primary school", "Teacher, secondary school", "Nurse, adult", "Nurse, children's",
    "Accountant, chartered public finance", "Designer, furniture", "Editor, film/video", "Lawyer",
    "Pharmacist, community", "Civil engineer, contracting", "Doctor, hospital", "Chief Executive Officer",
    "Retail buyer", "Paramedic", "Electrician, domestic", "Librarian, academic", "Sales executive",
    "Physiotherapist", "Journalist, newspaper", "Police officer", "Firefighter", "Quantity surveyor",
    "Exhibition designer", "Farm manager", "Veterinary surgeon", "IT trainer", "Barista",
    'Officer, "special" constable',
)  # fmt: skip
_MERCHANT_NAMES = (
    "Heathcote", "Yost", "Kertzmann", "Casper", "Hand", "Zulauf", "VonRueden", "Padberg", "Sauer", "Crist",
    "Jakubowski", "Littel", "Gerhold", "Collier", "Wilkinson", "Heidenreich", "Weimann", "Lockman", "Bernhard",
    "Torphy", "Gottlieb", "Considine", "Schultz", "Reichert", "Rowe", "Mraz", "Schroeder", "Wolff",
    "Hermiston", "Berge", "Ullrich", "Streich", "Hansen", "Veum", "Champlin", "Rolfson", "Connelly", "Schoen",
    "Quigley", "Effertz", "Welch", "Schowalter", "Stroman", "Hudson", "Erdman", "Adams", "Barrows", "McCullough",
    "Bartoletti", "Wunsch", "Schmitt", "Cole", "Johns", "Macejkovic", "Lesch", "Kerluke", "Kuhn", "Bogisich",
    "Boyer", "Rippin", "Kub", "Abbott", "Steuber", "Kozey", "Lubowitz", "Bahringer", "Osinski", "Koepp",
)  # fmt: skip
_MERCHANT_SUFFIXES = ("Inc", "LLC", "Group", "PLC", "Ltd", "and Sons")
# Card brands: (prefixes, lengths, weight). Lengths 11-19 as in the published files.
_BRANDS = (
    (("4",), (16,), 0.42),
    (("4",), (13,), 0.06),
    (("4",), (19,), 0.04),
    (("51", "52", "53", "54", "55", "2221", "2720"), (16,), 0.14),
    (("34", "37"), (15,), 0.08),
    (("6011", "65"), (16,), 0.06),
    (("3528", "3540", "3566", "3589"), (16,), 0.07),
    (("180", "213"), (15,), 0.04),
    (("30", "36", "38"), (14,), 0.04),
    (("50", "56", "57", "58", "60", "63", "67"), (11, 12, 19), 0.05),
)


@dataclass(frozen=True)
class GenerationSummary:
    rows: int
    frauds: int
    cards: int  # cardholder profiles
    start: str  # requested range, ISO dates, end inclusive
    end: str
    path: str  # file written (or directory, for the monthly split; or "<stream>")
    episodes: int = 0  # fraud episodes
    fraud_cards: int = 0  # cards with at least one episode
    active_cards: int = 0  # cards with at least one transaction
    seconds: float = 0.0
    files: tuple[str, ...] = ()  # the monthly files, in order

    @property
    def fraud_rate(self) -> float:
        return self.frauds / self.rows if self.rows else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def line(self) -> str:
        return (
            f"rows={self.rows} frauds={self.frauds} fraud_rate={self.fraud_rate:.4%} cards={self.cards} "
            f"(active {self.active_cards}, defrauded {self.fraud_cards}, episodes {self.episodes}) "
            f"range={self.start}..{self.end} path={self.path} seconds={self.seconds:.1f} "
            f"rows/s={self.rows_per_s:,.0f}"
        )


def header_line(with_index: bool = True) -> str:
    return ",".join(HEADER if with_index else HEADER[1:]) + "\n"


# =================================================================================================
# Plan: card profiles, per-slot legit counts, fraud episodes (everything small, computed up front)
# =================================================================================================


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy=seed, spawn_key=key)))


def _csv_field(value: str) -> str:
    """One field as csv.writer(QUOTE_MINIMAL, doublequote) writes it."""
    if "," in value or '"' in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _weights(table: dict[str, float], default: float = 0.0) -> np.ndarray:
    return np.array([table.get(c, default) for c in CATS], dtype=np.float64)


def _cum(p: np.ndarray) -> np.ndarray:
    """Row-normalised cumulative probabilities whose last entry is exactly 1."""
    c = np.cumsum(p / p.sum(axis=-1, keepdims=True), axis=-1)
    c[..., -1] = 1.0
    return c


_LUHN_DOUBLE = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _luhn_digit(body: str) -> str:
    """The check digit that makes ``body`` + digit pass the Luhn test."""
    digits = [ord(ch) - 48 for ch in reversed(body)]
    total = sum(_LUHN_DOUBLE[d] for d in digits[0::2]) + sum(digits[1::2])
    return str((10 - total % 10) % 10)


def _card_numbers(rng: np.random.Generator, n: int) -> list[str]:
    """Unique, Luhn-valid card numbers of realistic brands and lengths (11-19 digits)."""
    weights = np.array([b[2] for b in _BRANDS])
    out: list[str] = [""] * n
    seen: set[str] = set()
    todo = np.arange(n)
    while todo.size:  # duplicates (very rare) are drawn again
        m = todo.size
        brand = rng.choice(len(_BRANDS), size=m, p=weights / weights.sum()).tolist()
        pick_prefix = rng.random(m).tolist()
        pick_length = rng.random(m).tolist()
        digits = rng.integers(0, 10, size=(m, 19)).astype(np.uint8) + 48
        again = []
        for j, i in enumerate(todo.tolist()):
            prefixes, lengths, _ = _BRANDS[brand[j]]
            prefix = prefixes[int(pick_prefix[j] * len(prefixes))]
            length = lengths[int(pick_length[j] * len(lengths))]
            body = prefix + digits[j, : length - len(prefix) - 1].tobytes().decode()
            num = body + _luhn_digit(body)
            if num in seen:
                again.append(i)
            else:
                seen.add(num)
                out[i] = num
        todo = np.array(again, np.int64)
    return out


@functools.cache
def _merchants() -> tuple[str, ...]:
    """The fixed merchant universe (independent of the seed): MERCHANTS_PER_CATEGORY names per category.

    Returns the CSV text "merchant,category" per merchant id (id = category index *
    MERCHANTS_PER_CATEGORY + k); names follow the published files (``fraud_`` prefix, some with commas).
    """
    rng = _rng(20190101, _S_MERCHANTS)
    names_pool = _MERCHANT_NAMES
    seen: set[str] = set()
    fields: list[str] = []
    for cat in CATS:
        k = 0
        while k < MERCHANTS_PER_CATEGORY:
            a, b, c = (names_pool[int(i)] for i in rng.choice(len(names_pool), 3, replace=False))
            style = int(rng.integers(3))
            if style == 0:
                name = f"fraud_{a}, {b} and {c}"
            elif style == 1:
                name = f"fraud_{a}-{b}"
            else:
                name = f"fraud_{a} {_MERCHANT_SUFFIXES[int(rng.integers(len(_MERCHANT_SUFFIXES)))]}"
            if name in seen:
                continue
            seen.add(name)
            fields.append(f"{_csv_field(name)},{cat}")
            k += 1
    return tuple(fields)


@dataclass
class _Cards:
    n: int
    cc: list[str]  # card number strings
    block: list[str]  # csv text "first,...,dob" (quoted as needed)
    lat: np.ndarray  # home, as written
    long: np.ndarray
    rate: np.ndarray  # relative activity
    night: np.ndarray  # P(legit transaction at night)
    mult: np.ndarray  # spending level
    cat_mult: np.ndarray  # (cards, categories) spending level per category
    cum_cat_day: np.ndarray  # (cards, categories) cumulative category preferences by day
    cum_cat_night: np.ndarray  # ... and at night
    cum_day: np.ndarray  # cumulative card weights for a daytime legit transaction
    cum_night: np.ndarray  # ... and a night one


def _cards(seed: int, n: int, start: date, end: date) -> _Cards:
    rng = _rng(seed, _S_PROFILES)
    rate = np.clip(np.exp(math.log(2.0) + 0.7 * rng.standard_normal(n)), 0.5, 8.0)
    night = np.clip(_NIGHT_SHARE_BASE * np.exp(0.5 * rng.standard_normal(n)), 0.02, 0.45)
    mult = np.exp(0.45 * rng.standard_normal(n))
    cat_mult = np.exp(0.2 * rng.standard_normal((n, N_CATS)))
    share = _weights(_CAT_SHARE)
    pref = rng.dirichlet(share / share.sum() * _PREF_CONCENTRATION, size=n)
    pref = np.maximum(pref, 1e-6)  # a Dirichlet draw can underflow to 0 for a category
    cum_cat_day = _cum(pref)
    cum_cat_night = _cum(pref * _weights(_NIGHT_TILT, 1.0))

    gender_m = rng.random(n) < 0.5
    first_i = rng.integers(0, len(_FIRST_M), n)
    last_i = rng.integers(0, len(_LAST), n)
    street_no = rng.integers(0, 100_000, n)
    street_digits = rng.integers(1, 6, n)
    street_i = rng.integers(0, len(_STREET_NAMES), n)
    suffix_i = rng.integers(0, len(_STREET_SUFFIXES), n)
    unit = rng.random(n)
    unit_no = rng.integers(0, 1000, n)
    place_i = rng.integers(0, len(_PLACES), n)
    jitter = rng.uniform(-0.02, 0.02, (n, 2))
    job_i = rng.integers(0, len(_JOBS), n)
    # dob: age in [18, 90] at every date of the range
    latest = start.toordinal() - math.ceil(18 * 365.25)
    earliest = end.toordinal() - math.floor(90 * 365.25)
    if earliest > latest:  # a range longer than 72 years: keep ages >= 18
        earliest = latest - 365 * 40
    age_frac = rng.beta(2.0, 2.8, n)
    dob_ord = (latest - np.round(age_frac * (latest - earliest))).astype(np.int64)
    cc = _card_numbers(rng, n)

    places = [_PLACES[i] for i in place_i.tolist()]
    lat = np.round(np.array([p[3] for p in places]) + jitter[:, 0], 4)
    long = np.round(np.array([p[4] for p in places]) + jitter[:, 1], 4)
    units = np.where(unit < 0.12, 1, np.where(unit < 0.22, 2, 0)).tolist()
    blocks: list[str] = []
    columns = (
        places,
        lat.tolist(),
        long.tolist(),
        gender_m.tolist(),
        first_i.tolist(),
        last_i.tolist(),
        street_no.tolist(),
        street_digits.tolist(),
        street_i.tolist(),
        suffix_i.tolist(),
        units,
        unit_no.tolist(),
        job_i.tolist(),
        dob_ord.tolist(),
    )
    for place, la, lo, male, fi, li, no, nd, si, xi, un, uno, ji, dob in zip(*columns, strict=True):
        city, state, zip_code, _, _, pop = place
        street = f"{no % 10**nd:0{nd}d} {_STREET_NAMES[si]} {_STREET_SUFFIXES[xi]}"
        if un:
            street += f" {'Apt.' if un == 1 else 'Suite'} {uno:03d}"
        fields = (
            (_FIRST_M if male else _FIRST_F)[fi],
            _LAST[li],
            "M" if male else "F",
            street,
            city,
            state,
            zip_code,
            repr(la),
            repr(lo),
            str(pop),
            _JOBS[ji],
            date.fromordinal(dob).isoformat(),
        )
        blocks.append(",".join(map(_csv_field, fields)))

    return _Cards(
        n=n,
        cc=cc,
        block=blocks,
        lat=lat,
        long=long,
        rate=rate,
        night=night,
        mult=mult,
        cat_mult=cat_mult,
        cum_cat_day=cum_cat_day,
        cum_cat_night=cum_cat_night,
        cum_day=_cum(rate * (1.0 - night)),
        cum_night=_cum(rate * night),
    )


def _hour_is_night() -> np.ndarray:
    return np.array([h in _NIGHT_HOURS for h in range(24)])


def _slot_counts(seed: int, legit: int, start: date, ndays: int, cards: _Cards) -> np.ndarray:
    """Legit transactions per (day, hour) slot: one multinomial draw, total exactly ``legit``."""
    first = start.toordinal()
    day_w = np.empty(ndays)
    for d in range(ndays):
        day = date.fromordinal(first + d)
        day_w[d] = _MONTH_W[day.month - 1] * (_WEEKEND_BOOST if day.weekday() >= 5 else 1.0)
    night_mass = float(np.sum(cards.rate * cards.night))
    day_mass = float(np.sum(cards.rate * (1.0 - cards.night)))
    dw = np.array([_LEGIT_DAY_W.get(h, 0.0) for h in range(24)])
    nw = np.array([_LEGIT_NIGHT_W.get(h, 0.0) for h in range(24)])
    hour_w = day_mass * dw / dw.sum() + night_mass * nw / nw.sum()
    p = np.outer(day_w, hour_w).ravel()
    return _rng(seed, _S_SLOTS).multinomial(legit, p / p.sum()).astype(np.int64)


@dataclass
class _Fraud:
    """All fraud rows, sorted by time (seconds from the start of the range)."""

    t: np.ndarray
    card: np.ndarray
    cat: np.ndarray
    cents: np.ndarray
    merchant: np.ndarray
    mlat: np.ndarray
    mlong: np.ndarray
    episodes: int
    cards: int


def _sample_index(rng: np.random.Generator, table: dict[str, float], size: int) -> np.ndarray:
    w = _weights(table)
    return rng.choice(N_CATS, size=size, p=w / w.sum())


def _hour_offsets(rng: np.random.Generator, table: dict[int, float], size: int) -> np.ndarray:
    """Seconds after 22:00 for night hours given as {hour: weight}."""
    hours = np.array(sorted(table, key=lambda h: (h - 22) % 24))
    w = np.array([table[h] for h in hours])
    h = rng.choice(hours, size=size, p=w / w.sum())
    return ((h - 22) % 24) * HOUR_S + rng.integers(0, HOUR_S, size)


def _fraud(seed: int, frauds: int, ndays: int, cards: _Cards) -> _Fraud:
    empty_i = np.empty(0, np.int64)
    if frauds <= 0:
        e = np.empty(0)
        return _Fraud(empty_i, empty_i, empty_i, empty_i, empty_i, e, e, 0, 0)
    rng = _rng(seed, _S_FRAUD)
    # episode sizes, summing exactly to `frauds`
    draws = np.clip(
        np.round(np.exp(math.log(_EPISODE_SIZE_MEDIAN) + 0.5 * rng.standard_normal(frauds // 2 + 1))),
        _EPISODE_SIZE_MIN,
        _EPISODE_SIZE_MAX,
    ).astype(np.int64)
    csum = np.cumsum(draws)
    n_ep = int(np.searchsorted(csum, frauds)) + 1
    sizes = draws[:n_ep].copy()
    sizes[-1] -= int(csum[n_ep - 1]) - frauds
    if sizes[-1] < _EPISODE_SIZE_MIN and n_ep > 1:  # a remainder of 1: give it to the previous episode
        sizes[-2] += sizes[-1]
        sizes = sizes[:-1]
        n_ep -= 1
    # victims: distinct cards while there are enough; a few repeat victims
    rounds = -(-n_ep // cards.n)
    victims = np.concatenate([rng.permutation(cards.n) for _ in range(rounds)])[:n_ep]
    repeat = rng.random(n_ep) < _P_REPEAT_VICTIM
    victims[repeat] = victims[rng.integers(0, n_ep, int(repeat.sum()))]
    # a card's episodes go to successive, equal parts of the range (no overlap): rank among its episodes
    order = np.argsort(victims, kind="stable")
    sv = victims[order]
    group_start = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]])
    group = np.cumsum(np.r_[True, sv[1:] != sv[:-1]]) - 1
    ep_rank = np.empty(n_ep, np.int64)
    ep_count = np.empty(n_ep, np.int64)
    ep_rank[order] = np.arange(n_ep) - group_start[group]
    ep_count[order] = np.diff(np.r_[group_start, n_ep])[group]
    # per episode: span (1-3 days), first day within its part of the range, night propensity, test charges
    span = np.minimum(rng.choice(3, size=n_ep, p=_EPISODE_DAYS_P) + 1, ndays)
    seg_a = ep_rank * ndays // ep_count
    seg_b = (ep_rank + 1) * ndays // ep_count
    hi = np.maximum(seg_a, seg_b - span)
    d0 = np.minimum(seg_a + (rng.random(n_ep) * (hi - seg_a + 1)).astype(np.int64), ndays - span)
    p_night = np.where(rng.random(n_ep) < _P_NIGHT_EPISODE[0][0], _P_NIGHT_EPISODE[0][1], _P_NIGHT_EPISODE[1][1])
    n_test = np.where(rng.random(n_ep) < _P_TEST_CHARGES, np.where(rng.random(n_ep) < 0.7, 1, 2), 0)
    n_test = np.minimum(n_test, sizes - 1)
    # per fraud row
    n = frauds
    ep = np.repeat(np.arange(n_ep), sizes)
    day = d0[ep] + (rng.random(n) * span[ep]).astype(np.int64)
    t = np.where(
        rng.random(n) < p_night[ep],
        day * DAY_S + 22 * HOUR_S + _hour_offsets(rng, _FRAUD_NIGHT_W, n),
        day * DAY_S + 4 * HOUR_S + rng.integers(0, 18 * HOUR_S, n),
    )
    last_s = ndays * DAY_S - 1
    t = np.where(t > last_s, t - DAY_S, t)  # the night after the range's last day: that day's early hours
    t = t[np.lexsort((t, ep))].astype(np.int64)  # time order within each episode (ep is already sorted)
    test = np.arange(n) - (np.cumsum(sizes) - sizes)[ep] < n_test[ep]  # the episode's first charges
    cat = np.where(test, _sample_index(rng, _TEST_CAT_W, n), _sample_index(rng, _FRAUD_CAT_W, n))
    card = victims[ep]

    median = _weights({c: v[0] for c, v in _AMT.items()})
    ratio_med = np.clip(_weights(_FRAUD_TARGET, 300.0) / median, 3.0, 20.0)
    habit = median[cat] * cards.mult[card] * cards.cat_mult[card, cat]
    ratio = np.clip(ratio_med[cat] * np.exp(0.4 * rng.standard_normal(n)), 2.5, 30.0)
    modest = rng.random(n) < _P_MODEST_FRAUD
    ratio = np.where(modest, rng.uniform(0.8, 2.5, n), ratio)
    amt = np.clip(habit * ratio, 5.0, 5000.0)
    amt = np.where(test, rng.uniform(1.0, 20.0, n), amt)
    cents = np.maximum(np.round(amt * 100.0), 100).astype(np.int64)
    merchant = cat * MERCHANTS_PER_CATEGORY + rng.integers(0, MERCHANTS_PER_CATEGORY, n)
    mlat = np.clip(cards.lat[card] + rng.uniform(-1.0, 1.0, n), -90.0, 90.0)
    mlong = np.clip(cards.long[card] + rng.uniform(-1.0, 1.0, n), -180.0, 180.0)

    o = np.argsort(t, kind="stable")
    return _Fraud(t[o], card[o], cat[o], cents[o], merchant[o], mlat[o], mlong[o], n_ep, int(np.unique(victims).size))


@dataclass
class _Plan:
    rows: int
    start: date
    end: date
    ndays: int
    seed: int
    cards: _Cards
    slots: np.ndarray
    chunk_ends: np.ndarray  # slot index (exclusive) where each chunk ends
    fraud: _Fraud
    merchant_fields: tuple[str, ...]
    day_prefix: list[str]  # "YYYY-MM-DD " per day of the range
    unix0: int  # unix_time of the range's first second


def _make_plan(rows: int, cards: int, start: date, end: date, seed: int, fraud_rate: float) -> _Plan:
    _validate(rows=rows, cards=cards, start=start, end=end, seed=seed, fraud_rate=fraud_rate)
    rows, cards, seed, fraud_rate = int(rows), int(cards), int(seed), float(fraud_rate)
    ndays = (end - start).days + 1
    frauds = int(round(rows * fraud_rate))
    c = _cards(seed, cards, start, end)
    slots = _slot_counts(seed, rows - frauds, start, ndays, c)
    cum = np.cumsum(slots)
    total = int(cum[-1]) if cum.size else 0
    if total > CHUNK_ROWS:
        ends = np.searchsorted(cum, np.arange(CHUNK_ROWS, total, CHUNK_ROWS), side="left") + 1
        ends = np.unique(np.r_[ends, slots.size])
    else:
        ends = np.array([slots.size])
    day_prefix = [(start + timedelta(days=d)).isoformat() + " " for d in range(ndays)]
    return _Plan(
        rows=rows,
        start=start,
        end=end,
        ndays=ndays,
        seed=seed,
        cards=c,
        slots=slots,
        chunk_ends=ends,
        fraud=_fraud(seed, frauds, ndays, c),
        merchant_fields=_merchants(),
        day_prefix=day_prefix,
        unix0=calendar.timegm(start.timetuple()) - UNIX_TIME_OFFSET_S,
    )


def _validate(*, rows: int, cards: int, start: date, end: date, seed: int, fraud_rate: float) -> None:
    for name, value, low in (("rows", rows, 1), ("cards", cards, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not isinstance(start, date) or not isinstance(end, date):
        raise ValueError("start and end must be dates")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if not 0.0 <= fraud_rate < 1.0:
        raise ValueError(f"fraud_rate must be in [0, 1), got {fraud_rate!r}")


# =================================================================================================
# Chunks: generate, merge fraud, sort, format
# =================================================================================================


@dataclass
class _Chunk:
    t: np.ndarray  # seconds from the start of the range, sorted
    card: np.ndarray
    merchant: np.ndarray
    cents: np.ndarray
    mlat: np.ndarray
    mlong: np.ndarray
    fraud: np.ndarray  # 0/1
    trans_num: list[str]

    def __len__(self) -> int:
        return int(self.t.size)

    def part(self, a: int, b: int) -> _Chunk:
        return _Chunk(
            self.t[a:b],
            self.card[a:b],
            self.merchant[a:b],
            self.cents[a:b],
            self.mlat[a:b],
            self.mlong[a:b],
            self.fraud[a:b],
            self.trans_num[a:b],
        )


_AMT_MU = np.log(_weights({c: v[0] for c, v in _AMT.items()}))
_AMT_SIGMA = _weights({c: v[1] for c, v in _AMT.items()})
_AMT_P_BIG = _weights({c: v[2] for c, v in _AMT.items()})
_IS_NIGHT_HOUR = _hour_is_night()


def _chunks(plan: _Plan) -> Iterator[_Chunk]:
    cards, fraud = plan.cards, plan.fraud
    s0 = 0
    for ci, s1 in enumerate(plan.chunk_ends.tolist()):
        rng = _rng(plan.seed, _S_CHUNK, ci)
        counts = plan.slots[s0:s1]
        slot = np.repeat(np.arange(s0, s1, dtype=np.int64), counts)
        n = slot.size
        night = _IS_NIGHT_HOUR[slot % 24]
        u = rng.random(n)
        card = np.where(
            night,
            np.searchsorted(cards.cum_night, u, side="right"),
            np.searchsorted(cards.cum_day, u, side="right"),
        )
        np.minimum(card, cards.n - 1, out=card)
        t = slot * HOUR_S + rng.integers(0, HOUR_S, n)
        cum_cat = cards.cum_cat_day[card]
        cum_cat[night] = cards.cum_cat_night[card[night]]
        cat = np.count_nonzero(cum_cat < rng.random(n)[:, None], axis=1)
        del cum_cat
        amt = np.exp(_AMT_MU[cat] + _AMT_SIGMA[cat] * rng.standard_normal(n))
        amt *= cards.mult[card] * cards.cat_mult[card, cat]
        big = rng.random(n) < _AMT_P_BIG[cat]
        amt[big] *= np.exp(math.log(_BIG_TICKET_MEDIAN) + _BIG_TICKET_SIGMA * rng.standard_normal(int(big.sum())))
        cents = np.clip(np.round(amt * 100.0), 100, _LEGIT_MAX_CENTS).astype(np.int64)
        merchant = cat * MERCHANTS_PER_CATEGORY + rng.integers(0, MERCHANTS_PER_CATEGORY, n)
        mlat = np.clip(cards.lat[card] + rng.uniform(-1.0, 1.0, n), -90.0, 90.0)
        mlong = np.clip(cards.long[card] + rng.uniform(-1.0, 1.0, n), -180.0, 180.0)
        # merge this period's fraud
        fa, fb = np.searchsorted(fraud.t, [s0 * HOUR_S, s1 * HOUR_S], side="left")
        fa, fb = int(fa), int(fb)
        if fb > fa:
            t = np.concatenate([t, fraud.t[fa:fb]])
            card = np.concatenate([card, fraud.card[fa:fb]])
            merchant = np.concatenate([merchant, fraud.merchant[fa:fb]])
            cents = np.concatenate([cents, fraud.cents[fa:fb]])
            mlat = np.concatenate([mlat, fraud.mlat[fa:fb]])
            mlong = np.concatenate([mlong, fraud.mlong[fa:fb]])
        is_fraud = np.zeros(t.size, np.int64)
        is_fraud[n:] = 1
        o = np.argsort(t, kind="stable")
        hexes = rng.bytes(16 * t.size).hex()
        trans_num = [hexes[i : i + 32] for i in range(0, 32 * t.size, 32)]
        yield _Chunk(t[o], card[o], merchant[o], cents[o], mlat[o], mlong[o], is_fraud[o], trans_num)
        s0 = s1


@functools.cache
def _time_of_day() -> list[str]:
    """ "HH:MM:SS" for every second of a day."""
    hm = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
    ss = [f"{x:02d}" for x in range(60)]
    return [a + b for a in hm for b in ss]


_ROW_FORMAT = "%s%s,%s,%s,%.2f,%s,%s,%d,%.6f,%.6f,%d\n"
_ROW_FORMAT_INDEXED = "%d," + _ROW_FORMAT


def _format(plan: _Plan, ch: _Chunk, index_start: int | None) -> str:
    """CSV text of a chunk (every row ends with \\n); index_start None: no index column.

    The static text of a card ("first,...,dob") and of a merchant ("merchant,category") is quoted once
    up front; one %-format per row does the rest (the fastest pure-Python way measured).
    """
    if not len(ch):
        return ""
    t = ch.t
    card = ch.card.tolist()
    cols = [
        map(plan.day_prefix.__getitem__, (t // DAY_S).tolist()),
        map(_time_of_day().__getitem__, (t % DAY_S).tolist()),
        map(plan.cards.cc.__getitem__, card),
        map(plan.merchant_fields.__getitem__, ch.merchant.tolist()),
        (ch.cents / 100.0).tolist(),
        map(plan.cards.block.__getitem__, card),
        ch.trans_num,
        (t + plan.unix0).tolist(),
        ch.mlat.tolist(),
        ch.mlong.tolist(),
        ch.fraud.tolist(),
    ]
    fmt = _ROW_FORMAT
    if index_start is not None:
        cols.insert(0, range(index_start, index_start + len(ch)))
        fmt = _ROW_FORMAT_INDEXED
    return "".join(map(fmt.__mod__, zip(*cols, strict=True)))


# =================================================================================================
# Public API
# =================================================================================================


def _as_date(value: date | str) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value)
    if isinstance(value, datetime):
        return value.date()
    return value


class _Counter:
    def __init__(self, ncards: int) -> None:
        self.rows = 0
        self.frauds = 0
        self.active = np.zeros(ncards, bool)

    def add(self, ch: _Chunk) -> None:
        self.rows += len(ch)
        self.frauds += int(ch.fraud.sum())
        self.active[ch.card] = True


def _open_atomic(path: Path) -> tuple[IO[str], Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    return open(tmp, "w", encoding="utf-8", newline="", buffering=1 << 20), tmp


def generate_csv(
    out: str | Path | IO[str],
    *,
    rows: int,
    cards: int = 1000,
    start: date = date(2019, 1, 1),
    end: date = date(2020, 12, 31),
    seed: int = 0,
    fraud_rate: float = 0.005,
    with_index: bool = True,
    index_start: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationSummary:
    """Write ``rows`` transactions (exactly) to ``out`` (a path, written atomically, or an open text stream).

    ``end`` is inclusive. ``progress(rows_written, frauds_written)`` is called after every chunk.
    """
    started = time.monotonic()
    start, end = _as_date(start), _as_date(end)
    plan = _make_plan(rows, cards, start, end, seed, fraud_rate)
    counter = _Counter(cards)
    if isinstance(out, (str, Path)):
        path = Path(out)
        f, tmp = _open_atomic(path)
        name = str(path)
    else:
        f, tmp, name = out, None, str(getattr(out, "name", "<stream>"))
    try:
        f.write(header_line(with_index))
        for ch in _chunks(plan):
            f.write(_format(plan, ch, index_start + counter.rows if with_index else None))
            counter.add(ch)
            if progress is not None:
                progress(counter.rows, counter.frauds)
        if tmp is not None:
            f.close()
            os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            f.close()
            tmp.unlink(missing_ok=True)
        raise
    return _summary(plan, counter, name, started)


def _summary(plan: _Plan, counter: _Counter, path: str, started: float, files: tuple[str, ...] = ()):
    return GenerationSummary(
        rows=counter.rows,
        frauds=counter.frauds,
        cards=plan.cards.n,
        start=plan.start.isoformat(),
        end=plan.end.isoformat(),
        path=path,
        episodes=plan.fraud.episodes,
        fraud_cards=plan.fraud.cards,
        active_cards=int(counter.active.sum()),
        seconds=time.monotonic() - started,
        files=files,
    )


def month_file_name(year: int, month: int) -> str:
    return f"transactions_{year:04d}-{month:02d}.csv"


def generate_csv_monthly(
    out_dir: str | Path,
    *,
    rows: int,
    cards: int = 1000,
    start: date = date(2019, 1, 1),
    end: date = date(2020, 12, 31),
    seed: int = 0,
    fraud_rate: float = 0.005,
    with_index: bool = True,
    index_start: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationSummary:
    """The same data as ``generate_csv``, one file ``transactions_YYYY-MM.csv`` per calendar month of the range.

    Every month of the range gets a file (header only if it has no rows). The index column continues
    across files, so the files' rows concatenated are exactly ``generate_csv``'s rows.
    """
    started = time.monotonic()
    start, end = _as_date(start), _as_date(end)
    plan = _make_plan(rows, cards, start, end, seed, fraud_rate)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    months: list[tuple[int, int, int]] = []  # (year, month, first second of the month, from start)
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        first = max(date(y, m, 1), start)
        months.append((y, m, (first - start).days * DAY_S))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    bounds = np.array([b for _, _, b in months[1:]], np.int64)
    counter = _Counter(cards)
    files: list[str] = []
    current = -1
    f: IO[str] | None = None
    tmp: Path | None = None

    def open_month(i: int) -> None:
        nonlocal f, tmp, current
        close_current()
        path = out / month_file_name(months[i][0], months[i][1])
        f, tmp = _open_atomic(path)
        f.write(header_line(with_index))
        files.append(str(path))
        current = i

    def close_current() -> None:
        nonlocal f, tmp
        if f is not None and tmp is not None:
            f.close()
            os.replace(tmp, Path(files[-1]))
        f, tmp = None, None

    try:
        for ch in _chunks(plan):
            edges = np.r_[0, np.searchsorted(ch.t, bounds, side="left"), len(ch)].tolist()
            for i in range(len(months)):
                a, b = edges[i], edges[i + 1]
                if b > a:
                    while current < i:
                        open_month(current + 1)
                    assert f is not None
                    f.write(_format(plan, ch.part(a, b), index_start + counter.rows + a if with_index else None))
            counter.add(ch)
            if progress is not None:
                progress(counter.rows, counter.frauds)
        while current < len(months) - 1:
            open_month(current + 1)
        close_current()
    except BaseException:
        if f is not None:
            f.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return _summary(plan, counter, str(out), started, tuple(files))


def generate_rows(
    *,
    rows: int,
    cards: int = 100,
    start: date = date(2019, 1, 1),
    end: date = date(2020, 12, 31),
    seed: int = 0,
    fraud_rate: float = 0.005,
) -> list[dict[str, str]]:
    """The rows ``generate_csv`` writes for these arguments, in memory (for tests and small demos).

    Each row maps ``contract.COLUMN_NAMES`` to the CSV's string values (no index column).
    """
    buf = io.StringIO()
    generate_csv(buf, rows=rows, cards=cards, start=start, end=end, seed=seed, fraud_rate=fraud_rate, with_index=False)
    buf.seek(0)
    return list(csv.DictReader(buf))
