"""Split the cafe's tip jar by hours worked, rounded to the quarter."""


def split_tips(total: float, hours: dict[str, float]) -> dict[str, float]:
    worked = sum(hours.values())
    return {name: round(total * h / worked * 4) / 4 for name, h in hours.items()}
