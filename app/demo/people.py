"""The demo's sites and users, with the demo logins `make run` prints."""

from __future__ import annotations

from dataclasses import dataclass

from biip.checksums import gs1_standard_check_digit

ACTOR = "demo-loader"
# Every demo site is in mainland China (Shenzhen, Guangzhou, Dalian, Chongqing).
TIME_ZONE = "Asia/Shanghai"


def gs1(body: str) -> str:
    return body + str(gs1_standard_check_digit(body))


# GS1 prefix 950 is the GS1 Global Office's, used for examples: these never clash with a
# real company's numbers.
SITES = [
    (
        "XSM-SZ",
        "XellSmart Biopharmaceutical, Suzhou (manufacturing)",
        "manufacturer",
        "950600010001",
    ),
    ("XSM-QC", "XellSmart QC laboratory, Suzhou", "qc_lab", "950600010002"),
    (
        "AMU-CTC",
        "Army Medical University Cell Therapy Centre, Chongqing",
        "manufacturer",
        "950600010003",
    ),
    ("CRYO-GZ", "CryoLink Couriers depot, Guangzhou", "courier_depot", "950600010004"),
    (
        "SYSU3-PH",
        "Third Affiliated Hospital of Sun Yat-sen University, pharmacy",
        "hospital_pharmacy",
        "950600010005",
    ),
    (
        "SYSU3-SPINE",
        "Third Affiliated Hospital of Sun Yat-sen University, spine surgery ward",
        "ward",
        "950600010006",
    ),
    (
        "DMU1-PH",
        "First Affiliated Hospital of Dalian Medical University, pharmacy",
        "hospital_pharmacy",
        "950600010007",
    ),
    (
        "AMU-SW-PH",
        "Southwest Hospital, Army Medical University, pharmacy",
        "hospital_pharmacy",
        "950600010008",
    ),
    (
        "AMU-SW-ICU",
        "Southwest Hospital, Army Medical University, intensive care unit",
        "ward",
        "950600010009",
    ),
]

# Each ward and the hospital pharmacy that supplies it.
WARD_PHARMACY = {"SYSU3-SPINE": "SYSU3-PH", "AMU-SW-ICU": "AMU-SW-PH"}


@dataclass(frozen=True)
class DemoUser:
    """A demo login, printed by `make run`."""

    username: str
    full_name: str
    role: str
    site: str
    unblinded: bool = False

    @property
    def password(self) -> str:
        """Demo passwords are public by design; production users get their own."""
        return f"{self.username}-demo-2026"


USERS = [
    DemoUser("admin", "Ada Admin", "admin", "XSM-SZ"),
    DemoUser("manufacturing", "Meng Zhao", "manufacturing", "XSM-SZ"),
    DemoUser("qc", "Qiu Chen", "qc", "XSM-QC"),
    DemoUser("qa", "Li Wei", "qa", "XSM-SZ"),
    DemoUser("courier", "Kai Lin", "courier", "CRYO-GZ"),
    DemoUser("courier2", "Bo Yang", "courier", "CRYO-GZ"),
    DemoUser("pharmacist", "Fang Hu", "pharmacist", "SYSU3-PH"),
    DemoUser("clinician", "Dong Jianwen", "clinician", "SYSU3-SPINE"),
    DemoUser("auditor", "Ada Auditor", "auditor", "XSM-SZ"),
    DemoUser("amu-pharmacist", "Xu Ping", "pharmacist", "AMU-SW-PH", unblinded=True),
    DemoUser("amu-clinician", "Xiang Jun", "clinician", "AMU-SW-ICU"),
    # Packs the sepsis trial's blinded kits: packing means seeing the arm.
    DemoUser("kit-packer", "Pan Jie", "manufacturing", "XSM-SZ", unblinded=True),
]
