"""Reference data of the synthetic Chinese company: places, names, industries, products, staff.

Why hand-written lists: the demo must run offline and be byte-identical for a seed, so every name
comes from these fixed tuples; weights roughly follow population and economic weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Province:
    full_name: str  # official name with suffix: 广东省, 上海市, 广西壮族自治区
    short_name: str  # everyday name without suffix: 广东, 上海, 广西
    weight: float
    cities: tuple[str, ...]  # without the 市 suffix


PROVINCES: tuple[Province, ...] = (
    Province("广东省", "广东", 12, ("广州", "深圳", "东莞", "佛山", "珠海")),
    Province("江苏省", "江苏", 9, ("南京", "苏州", "无锡", "常州")),
    Province("浙江省", "浙江", 8, ("杭州", "宁波", "温州", "绍兴")),
    Province("山东省", "山东", 7, ("济南", "青岛", "烟台", "潍坊")),
    Province("上海市", "上海", 7, ("上海",)),
    Province("北京市", "北京", 7, ("北京",)),
    Province("天津市", "天津", 2, ("天津",)),
    Province("重庆市", "重庆", 3, ("重庆",)),
    Province("四川省", "四川", 5, ("成都", "绵阳", "德阳")),
    Province("湖北省", "湖北", 4, ("武汉", "宜昌", "襄阳")),
    Province("湖南省", "湖南", 3, ("长沙", "株洲", "岳阳")),
    Province("河南省", "河南", 4, ("郑州", "洛阳", "开封")),
    Province("河北省", "河北", 3, ("石家庄", "唐山", "保定")),
    Province("福建省", "福建", 4, ("福州", "厦门", "泉州")),
    Province("安徽省", "安徽", 3, ("合肥", "芜湖")),
    Province("江西省", "江西", 2, ("南昌", "赣州")),
    Province("辽宁省", "辽宁", 2, ("沈阳", "大连")),
    Province("黑龙江省", "黑龙江", 1, ("哈尔滨", "大庆")),
    Province("陕西省", "陕西", 2, ("西安", "宝鸡")),
    Province("云南省", "云南", 2, ("昆明", "大理")),
    Province("贵州省", "贵州", 1, ("贵阳", "遵义")),
    Province("海南省", "海南", 1, ("海口", "三亚")),
    Province("广西壮族自治区", "广西", 2, ("南宁", "柳州", "桂林")),
    Province("内蒙古自治区", "内蒙古", 1, ("呼和浩特", "包头")),
    Province("新疆维吾尔自治区", "新疆", 1, ("乌鲁木齐",)),
    Province("宁夏回族自治区", "宁夏", 0.5, ("银川",)),
)

INDUSTRIES: tuple[str, ...] = (
    "制造业",
    "零售",
    "互联网",
    "金融",
    "教育",
    "医疗",
    "物流",
    "房地产",
    "能源",
    "餐饮",
)
INDUSTRY_WEIGHTS: tuple[float, ...] = (20, 15, 12, 8, 8, 8, 10, 6, 5, 8)
# Company-name suffix per industry (same order as INDUSTRIES), for believable names.
INDUSTRY_COMPANY_SUFFIX: tuple[str, ...] = (
    "制造有限公司",
    "商贸有限公司",
    "网络科技有限公司",
    "投资管理有限公司",
    "教育科技有限公司",
    "医疗器械有限公司",
    "物流有限公司",
    "置业有限公司",
    "能源股份有限公司",
    "餐饮管理有限公司",
)
GENERIC_COMPANY_SUFFIX = "科技有限公司"

# Company name words and their pinyin (used for the company mail domain).
COMPANY_WORDS: tuple[tuple[str, str], ...] = (
    ("华信", "huaxin"),
    ("恒达", "hengda"),
    ("宏远", "hongyuan"),
    ("鑫源", "xinyuan"),
    ("博通", "botong"),
    ("瑞丰", "ruifeng"),
    ("金桥", "jinqiao"),
    ("天成", "tiancheng"),
    ("中科", "zhongke"),
    ("海纳", "haina"),
    ("东方", "dongfang"),
    ("盛世", "shengshi"),
    ("百川", "baichuan"),
    ("远航", "yuanhang"),
    ("卓越", "zhuoyue"),
    ("新锐", "xinrui"),
)

SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("赵", "zhao"),
    ("黄", "huang"),
    ("周", "zhou"),
    ("吴", "wu"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("胡", "hu"),
    ("朱", "zhu"),
    ("高", "gao"),
    ("林", "lin"),
    ("何", "he"),
    ("郭", "guo"),
    ("马", "ma"),
    ("罗", "luo"),
)
SURNAME_WEIGHTS: tuple[float, ...] = (
    7.2, 7.0, 6.7, 5.4, 4.5, 3.1, 2.3, 2.2, 1.9, 1.8,
    1.7, 1.5, 1.3, 1.2, 1.1, 1.1, 1.0, 1.0, 0.9, 0.9,
)  # fmt: skip
GIVEN_NAMES: tuple[tuple[str, str], ...] = (
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀英", "xiuying"),
    ("霞", "xia"),
    ("平", "ping"),
    ("志强", "zhiqiang"),
    ("海燕", "haiyan"),
    ("建华", "jianhua"),
    ("晓东", "xiaodong"),
)

PERSON_MAIL_DOMAINS: tuple[str, ...] = ("example.net", "example.org", "mail.example.com")
COMPANY_MAIL_TLD = "example.cn"
REP_MAIL_DOMAIN = "example.com"

MOBILE_PREFIXES: tuple[str, ...] = ("130", "135", "136", "138", "139", "150", "158", "186", "188")

SOURCE_CHANNELS_COMPANY: tuple[str, ...] = ("trade_show", "referral", "cold_call", "website")
SOURCE_CHANNELS_PERSON: tuple[str, ...] = (
    "tmall",
    "jd",
    "wechat_mini_program",
    "douyin",
    "website",
)

ORDER_CHANNELS_COMPANY: tuple[str, ...] = ("sales_rep", "distributor", "website")
ORDER_CHANNELS_PERSON: tuple[str, ...] = ("tmall", "jd", "wechat_mini_program", "offline_store")
CATEGORIES_COMPANY: tuple[str, ...] = ("办公用品", "工业设备", "软件服务", "电子产品")
CATEGORIES_PERSON: tuple[str, ...] = ("电子产品", "家居用品", "服装", "食品饮料", "美妆个护")

# The sales organisation: (rep_id, name, pinyin, team, manager rep_id or None, active).
# R001 heads sales; R002-R005 manage the teams; two inactive reps have no manager on record.
SALES_REPS: tuple[tuple[str, str, str, str, str | None, bool], ...] = (
    ("R001", "陈建国", "chen.jianguo", "销售管理部", None, True),
    ("R002", "王芳", "wang.fang", "华东大客户部", "R001", True),
    ("R003", "李强", "li.qiang", "华南销售部", "R001", True),
    ("R004", "张伟", "zhang.wei", "华北销售部", "R001", True),
    ("R005", "刘洋", "liu.yang", "电商客服组", "R001", True),
    ("R006", "赵敏", "zhao.min", "华东大客户部", "R002", True),
    ("R007", "孙磊", "sun.lei", "华东大客户部", "R002", True),
    ("R008", "周静", "zhou.jing", "华东大客户部", "R002", True),
    ("R009", "吴涛", "wu.tao", "华东大客户部", "R002", False),
    ("R010", "郑丽", "zheng.li", "华南销售部", "R003", True),
    ("R011", "黄杰", "huang.jie", "华南销售部", "R003", True),
    ("R012", "林娜", "lin.na", "华南销售部", "R003", True),
    ("R013", "何勇", "he.yong", "华北销售部", "R004", True),
    ("R014", "高艳", "gao.yan", "华北销售部", "R004", False),
    ("R015", "马超", "ma.chao", "华北销售部", "R004", True),
    ("R016", "罗明", "luo.ming", "电商客服组", "R005", True),
    ("R017", "胡军", "hu.jun", "电商客服组", None, False),
    ("R018", "朱霞", "zhu.xia", "电商客服组", "R005", True),
    ("R019", "徐平", "xu.ping", "华东大客户部", "R002", True),
    ("R020", "郭娟", "guo.juan", "华南销售部", None, False),
)
UNKNOWN_REP_ID_RANGE: tuple[int, int] = (900, 1000)  # owner ids like R9xx that no rep file holds

# Lunar New Year (春节) dates; outside this table the festival is assumed on February 5.
SPRING_FESTIVAL: dict[int, date] = {
    2015: date(2015, 2, 19),
    2016: date(2016, 2, 8),
    2017: date(2017, 1, 28),
    2018: date(2018, 2, 16),
    2019: date(2019, 2, 5),
    2020: date(2020, 1, 25),
    2021: date(2021, 2, 12),
    2022: date(2022, 2, 1),
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
    2033: date(2033, 1, 31),
    2034: date(2034, 2, 19),
    2035: date(2035, 2, 8),
}
SPRING_FESTIVAL_FALLBACK = (2, 5)  # (month, day)
