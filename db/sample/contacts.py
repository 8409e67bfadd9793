"""Sample people's names, mobile numbers and addresses (Indian by default)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import phonenumbers
from phonenumbers import PhoneNumberType

# Two-digit mobile prefixes; 98 is left to tests/factories.py so the two never collide.
_IN_PREFIXES = tuple(str(p) for p in (*range(90, 98), 99, *range(70, 90), *range(62, 70)))


def _phone_plan(region: str) -> tuple[list[str], int]:
    """E.164 prefixes and how many digits follow them, for mobile numbers in region."""
    if region == "IN":
        return ["+91" + p for p in _IN_PREFIXES], 8
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    if example is None:
        raise ValueError(f"no mobile numbers known for region {region}")
    nsn = phonenumbers.national_significant_number(example)
    keep = max(1, len(nsn) // 2)
    return [f"+{example.country_code}{nsn[:keep]}"], len(nsn) - keep


def mobile_numbers(rng: random.Random, region: str, taken: set[str]) -> Iterator[str]:
    """Unique valid mobile numbers not in taken, in a seed-dependent order."""
    prefixes, width = _phone_plan(region)
    space, offset = 10**width, rng.randrange(10**width)

    def numbers() -> Iterator[str]:
        for i in range(len(prefixes) * space):
            # 7919 is coprime with 10, so i -> local is one-to-one within each prefix.
            local = (i // len(prefixes) * 7919 + offset) % space
            number = f"{prefixes[i % len(prefixes)]}{local:0{width}d}"
            if number not in taken and phonenumbers.is_valid_number(phonenumbers.parse(number)):
                yield number
        raise ValueError(f"ran out of sample phone numbers for region {region}")

    return numbers()


def street_address(rng: random.Random) -> str:
    city, pin = rng.choice(_CITIES)
    street = f"{rng.choice(_STREETS)} {rng.choice(_STREET_KINDS)}"
    return f"{rng.randint(1, 250)}, {street}, {city} {pin}{rng.randint(1, 99):03d}"


def _words(names: str) -> tuple[str, ...]:
    return tuple(names.split())


FIRST_NAMES = _words(
    "Aarav Aditi Akash Amit Ananya Anil Anjali Arjun Asha Deepak Divya Farhan Gaurav Geeta "
    "Harish Imran Isha Jaya Karan Kavita Lakshmi Mahesh Manoj Meena Mohan Nandini Neha "
    "Nikhil Pooja Prakash Priya Rahul Rajesh Ramesh Ravi Rekha Rohan Sachin Sana Sandeep "
    "Sanjay Sarita Shalini Shweta Simran Sneha Sunil Sunita Suresh Tanvi Usha Varun Vijay "
    "Vikram Vinod Yash Zoya Abdul Fatima Gurpreet Harpreet Joseph Mary Thomas Venkat"
)
LAST_NAMES = _words(
    "Agarwal Bhat Banerjee Chauhan Das Desai Dubey Gupta Iyer Jain Joshi Kapoor Khan Kulkarni "
    "Kumar Malhotra Menon Mishra Nair Pandey Patel Pillai Rao Reddy Saxena Shah Sharma Shetty "
    "Singh Sinha Srivastava Thakur Tiwari Trivedi Verma Yadav Ansari Fernandes Gill Hegde "
    "Mukherjee Naidu Qureshi Sethi Sheikh Chatterjee Dsouza Ghosh Patil Pawar"
)
STAFF_NAMES = (
    "Anita Desai",
    "Rahul Verma",
    "Imran Qureshi",
    "Priya Nair",
    "Sandeep Gill",
    "Kavita Rao",
    "Joseph Fernandes",
    "Neha Kulkarni",
    "Vikram Chauhan",
    "Lakshmi Iyer",
    "Harish Pandey",
)
TAGS = ("shopkeeper", "salaried", "farmer", "driver", "self-employed")
_STREETS = (
    "Gandhi",
    "Nehru",
    "Station",
    "Market",
    "Temple",
    "Lake",
    "Mill",
    "Church",
    "Park",
    "Tilak",
    "Shivaji",
    "Ambedkar",
    "MG",
    "Old Post Office",
    "Bazaar",
)
_STREET_KINDS = ("Road", "Marg", "Street", "Lane", "Nagar", "Colony", "Chowk")
_CITIES = (
    ("Mumbai", "400"),
    ("Pune", "411"),
    ("Delhi", "110"),
    ("Bengaluru", "560"),
    ("Chennai", "600"),
    ("Hyderabad", "500"),
    ("Kolkata", "700"),
    ("Jaipur", "302"),
    ("Lucknow", "226"),
    ("Ahmedabad", "380"),
    ("Indore", "452"),
    ("Nagpur", "440"),
    ("Kochi", "682"),
    ("Surat", "395"),
    ("Patna", "800"),
    ("Bhopal", "462"),
)
